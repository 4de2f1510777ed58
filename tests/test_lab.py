"""`make lab`: JupyterLab serves the project's notebooks on the project's kernel.

Starts a real ``jupyter lab`` on loopback (free port, random token, the repository as root), checks
through its REST API that every notebooks/*.ipynb is listed and opens as a notebook whose kernel is
registered, that the ``lakepaper`` kernelspec (installed by ``make venv``) is there and that a
``lakepaper`` kernel starts; then stops the server. The server is always stopped (try/finally), and
the test fails if it outlives the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from builders import jupyterlab_command, kernel_client

from lakepaper import paths

pytest.importorskip("jupyterlab", reason="JupyterLab not installed (pip install -e '.[lab]')")

KERNEL = "lakepaper"
BUDGET_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": f"token {token}"}

    def call(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 5.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=self.headers)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's process group; kill it if it does not stop within 10 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_jupyterlab_lists_and_opens_the_notebooks_on_the_project_kernel(tmp_path):
    expected = sorted(p.name for p in paths.NOTEBOOKS.glob("*.ipynb"))
    assert expected, "no notebooks/*.ipynb"
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_PLATFORM_DIRS="1")
    log = (tmp_path / "lab.log").open("w")
    t0 = time.monotonic()
    cmd = jupyterlab_command(port, token)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    api = Api(port, token)
    kernel_id = None
    try:
        # 1. the notebooks folder, listed through the contents API
        listing, deadline = None, t0 + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"jupyter lab exited early:\n{Path(log.name).read_text()[-3000:]}"
            try:
                _, listing = api.call("/api/contents/notebooks?content=1", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        assert listing is not None, f"server not answering after 20 s:\n{Path(log.name).read_text()[-3000:]}"
        listed = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
        assert listed == expected

        # 2. the project's kernel is registered (make venv: ipykernel install --sys-prefix --name lakepaper)
        _, specs = api.call("/api/kernelspecs")
        assert KERNEL in specs["kernelspecs"], f"kernelspec {KERNEL!r} not registered: {sorted(specs['kernelspecs'])}"

        # 3. every notebook opens as a notebook, on a registered kernel
        for name in expected:
            _, nb = api.call(f"/api/contents/notebooks/{name}?content=1&type=notebook")
            assert nb["type"] == "notebook" and nb["format"] == "json", name
            kernel = nb["content"]["metadata"].get("kernelspec", {}).get("name")
            assert kernel in specs["kernelspecs"], f"{name} asks for kernel {kernel!r}, not registered"

        # 4. a lakepaper kernel starts and answers (a client on its connection file, as the Lab front end would)
        _, kernel = api.call("/api/kernels", method="POST", body={"name": KERNEL})
        kernel_id = kernel["id"]
        with kernel_client(tmp_path / "runtime", kernel_id, timeout=15) as client:
            reply = client.execute_interactive("import lakepaper", timeout=10, output_hook=lambda msg: None)
            assert reply["content"]["status"] == "ok", reply["content"]
        api.call(f"/api/kernels/{kernel_id}", method="DELETE")
        kernel_id = None
    finally:
        if kernel_id is not None and proc.poll() is None:
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                api.call(f"/api/kernels/{kernel_id}", method="DELETE")
        _stop(proc)
        log.close()
    assert proc.poll() is not None, "jupyter lab still running after the test"
    elapsed = time.monotonic() - t0
    assert elapsed < BUDGET_S, f"took {elapsed:.1f} s (budget {BUDGET_S:.0f} s)"
