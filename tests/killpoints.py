"""Killing a stage with SIGKILL at chosen moments, rerunning it, and comparing with an uninterrupted run.

Used by ``tests/test_reliability.py``. A *job* is a Python snippet run in a fresh interpreter
(``python -c``, its own process group) that writes into ``OUT`` (an environment variable). The harness:

1. runs the job once uninterrupted into a reference folder and times it;
2. for each kill point (a fraction of that time), starts the job into a work folder, sends
   SIGKILL to its whole process group at that moment (the job and any worker processes it
   started, as a power cut would), and checks what the killed run left: every visible file that
   is also in the reference must be byte-identical to it (atomic writes: nothing half-written
   looks finished), and there is no manifest unless the reference's is complete;
3. reruns the job to completion in the same folder and checks that every visible file equals
   the reference (hash trees equal, manifests excluded: they hold wall times) and that no
   temporary ``.partial`` file is left.

Options for stages that need them:

* ``mark=True``: the job runs ``open(os.environ["KILL_MARK"], "w").close()`` when its stage starts
  (after the imports, which otherwise take most of a tiny job's time); the run time and the kill
  moments are then counted from that mark, so that every kill lands inside the stage's work;
* ``digest``: folder -> {file: fingerprint}, for stages whose files hold wall times (training:
  ``history.csv``'s ``seconds``, the checkpoints' metrics); the comparisons use it instead of bytes;
* ``check_left``: ``check_left(folder, reference_folder)`` replaces step 2's check, for stages that
  rewrite files as they go (training rewrites ``last.pt`` every epoch, so a killed run's files are
  earlier, complete states rather than the reference's bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lakepaper import io

EXCLUDE = ("manifest.json",)
#: The line a job runs when its stage starts (see ``mark`` above).
MARK = 'open(os.environ.get("KILL_MARK", os.devnull), "w").close()'
#: Longest a job may run, seconds (a hung job fails the test instead of hanging it).
TIMEOUT = 600.0


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_job(
    code: str, out: Path, *, kill_after: float | None = None, mark: bool = False, env: dict | None = None
) -> tuple[bool, float]:
    """Run ``code`` with ``OUT=out``; kill it ``kill_after`` s after its start (or its mark).

    Returns (killed, seconds): seconds from the start, or from the mark when ``mark`` is set.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    flag = out.parent / f".{out.name}.mark"
    flag.unlink(missing_ok=True)
    env = dict(os.environ, OUT=str(out), PYTHONWARNINGS="ignore", **(env or {}))
    if mark:
        env["KILL_MARK"] = str(flag)
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            origin = None if mark else started
            while proc.poll() is None:
                now = time.perf_counter()
                if origin is None and flag.exists():
                    origin = now
                if kill_after is not None and origin is not None and now - origin >= kill_after:
                    _kill_group(proc)
                    return True, now - origin
                if now - started > TIMEOUT:
                    raise RuntimeError(f"job ran past {TIMEOUT} s")
                time.sleep(0.005)
        finally:
            if proc.poll() is None:
                _kill_group(proc)
        ended = time.perf_counter()
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"job failed ({proc.returncode}): {log.read().decode(errors='replace')[-3000:]}")
    if origin is None:  # with mark: the stage started and ended between two polls, or never started
        if not flag.exists():
            raise RuntimeError("the job never ran its MARK line")
        origin = ended
    return False, ended - origin


def hashes(folder: Path) -> dict[str, str]:
    """The default digest: SHA-256 of every visible file but the manifest."""
    return io.hash_tree(folder, exclude=EXCLUDE)


def _feed(h, obj) -> None:
    """Hash a checkpoint's contents: tensors by dtype, shape and bytes; ``seconds`` entries (wall times) skipped."""
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode() + t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            if k != "seconds":
                h.update(f"K{k!r}".encode())
                _feed(h, obj[k])
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"V{obj!r}".encode())


def checkpoint_digest(path: Path) -> str:
    """Everything a checkpoint holds (weights, optimizer state, history, ...) but wall times."""
    from lakepaper.train.checkpoint import read_checkpoint

    h = hashlib.sha256()
    _feed(h, read_checkpoint(path))
    return h.hexdigest()


def history_digest(path: Path) -> str:
    """``history.csv`` without its ``seconds`` column."""
    import pandas as pd

    frame = pd.read_csv(path).drop(columns="seconds", errors="ignore")
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def stage_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file's bytes, as a stage manifest's ``outputs`` has them: logs and timings
    (:data:`lakepaper.io.VOLATILE`) left out, checkpoints and ``history.csv`` compared byte for byte."""
    outputs, _ = io.split_volatile(io.hash_tree(folder, exclude=EXCLUDE))
    return outputs


def check_kill_points(
    code: str,
    ref: Path,
    work: Path,
    fractions: list[float],
    *,
    mark: bool = False,
    digest: Callable[[Path], dict] = hashes,
    check_left: Callable[[Path, Path], None] | None = None,
) -> dict:
    """Kill at each fraction of the reference run time, check, rerun, compare. Returns counts."""
    _, seconds = run_job(code, ref, mark=mark)
    reference = digest(ref)
    assert reference, "the job wrote nothing"
    killed, moments = 0, []
    for k, fraction in enumerate(fractions):
        folder = work / f"kill{k}"
        was_killed, at = run_job(code, folder, kill_after=max(0.05, fraction * seconds), mark=mark)
        killed += was_killed
        moments.append(round(at, 3) if was_killed else None)
        if check_left is not None:
            if folder.exists():
                check_left(folder, ref)
        else:
            left = digest(folder) if folder.exists() else {}
            wrong = {f for f, h in left.items() if reference.get(f) not in (None, h)}
            assert not wrong, f"kill point {fraction:.2f}: half-written file(s) look finished: {sorted(wrong)[:5]}"
        if (folder / "manifest.json").exists() and was_killed:
            assert digest(folder) == reference, f"kill point {fraction:.2f}: a manifest beside incomplete outputs"
        run_job(code, folder, mark=mark)
        stale = [q.name for q in folder.rglob("*") if ".partial" in q.name]
        assert not stale, f"kill point {fraction:.2f}: the rerun left temporary files {stale[:5]}"
        assert (folder / "manifest.json").exists(), f"kill point {fraction:.2f}: the rerun wrote no manifest"
        again = digest(folder)
        differs = sorted(f for f in set(again) | set(reference) if again.get(f) != reference.get(f))
        assert not differs, f"kill point {fraction:.2f}: rerun differs in {differs[:5]}"
    return {"kill_points": len(fractions), "killed_mid_run": killed, "seconds": seconds, "moments": moments}


def die_once(flag: str, out_dir: str):
    """A Dask worker plugin: the first worker to start a ``predict_one`` task exits (``os._exit``, no cleanup)
    as soon as that task has a half-written file of its own in ``out_dir``; it writes its pid to ``flag``
    first, and ``flag`` existing keeps every other worker (and the restarted one) alive.

    The class is made here, not at module level, so that cloudpickle sends it by value: the workers need not
    import this module.
    """
    from distributed import WorkerPlugin

    class DieOnce(WorkerPlugin):
        name = "die-once"

        def __init__(self, flag: str, out_dir: str) -> None:
            self.flag, self.out_dir = flag, out_dir

        def transition(self, key, start, finish, **kwargs) -> None:
            if finish != "executing" or "predict_one" not in str(key):
                return
            try:
                fd = os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            threading.Thread(target=self._die, daemon=True).start()

        def _die(self) -> None:
            mine = f".{os.getpid()}.partial"  # io.atomic_path's temporary names carry the writer's pid
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(mine in p.name for p in Path(self.out_dir).iterdir()):
                time.sleep(0.001)
            os._exit(1)

    return DieOnce(flag, out_dir)
