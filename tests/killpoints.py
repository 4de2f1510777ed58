"""Killing a stage with SIGKILL at chosen moments, rerunning it, and comparing with an uninterrupted run.

Used by ``tests/test_reliability.py``. A *job* is a Python snippet run in a fresh interpreter
(``python -c``) that writes into ``OUT`` (an environment variable). The harness:

1. runs the job once uninterrupted into a reference folder and times it;
2. for each kill point (a fraction of that time), starts the job into a work folder, sends
   SIGKILL at that moment, and checks what the killed run left: every visible file that is
   also in the reference must be byte-identical to it (atomic writes: nothing half-written
   looks finished), and there is no manifest unless the reference's is complete;
3. reruns the job to completion in the same folder and checks that every visible file equals
   the reference (hash trees equal, manifests excluded: they hold wall times).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lakepaper import io

EXCLUDE = ("manifest.json",)


def run_job(code: str, out: Path, *, kill_after: float | None = None) -> tuple[bool, float]:
    """Run ``code`` with ``OUT=out``; kill it after ``kill_after`` s. Returns (killed, seconds)."""
    env = dict(os.environ, OUT=str(out), PYTHONWARNINGS="ignore")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_after is None:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"job failed ({proc.returncode}): {err.decode()[-2000:]}")
        return False, time.perf_counter() - started
    try:
        proc.wait(timeout=kill_after)
        return False, time.perf_counter() - started  # finished before the kill point
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True, time.perf_counter() - started


def check_kill_points(code: str, ref: Path, work: Path, fractions: list[float]) -> dict:
    """Kill at each fraction of the reference run time, check, rerun, compare. Returns counts."""
    _, seconds = run_job(code, ref)
    reference = io.hash_tree(ref, exclude=EXCLUDE)
    assert reference, "the job wrote nothing"
    killed = 0
    for k, fraction in enumerate(fractions):
        folder = work / f"kill{k}"
        was_killed, _ = run_job(code, folder, kill_after=max(0.05, fraction * seconds))
        killed += was_killed
        left = io.hash_tree(folder, exclude=EXCLUDE) if folder.exists() else {}
        wrong = {f for f, h in left.items() if reference.get(f) not in (None, h)}
        assert not wrong, f"kill point {fraction:.2f}: half-written file(s) look finished: {sorted(wrong)[:5]}"
        if (folder / "manifest.json").exists() and was_killed:
            assert left == reference, f"kill point {fraction:.2f}: a manifest beside incomplete outputs"
        run_job(code, folder)
        stale = [q.name for q in folder.rglob("*") if ".partial" in q.name]
        assert not stale, f"kill point {fraction:.2f}: the rerun left temporary files {stale[:5]}"
        again = io.hash_tree(folder, exclude=EXCLUDE)
        differs = sorted(f for f in set(again) | set(reference) if again.get(f) != reference.get(f))
        assert not differs, f"kill point {fraction:.2f}: rerun differs in {differs[:5]}"
    return {"kill_points": len(fractions), "killed_mid_run": killed, "seconds": seconds}
