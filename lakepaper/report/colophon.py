"""The colophon's facts: source revision, this machine, package versions, and every stage's record.

Everything about the stages comes from their manifests (what each run recorded when it ran);
only the source revision, the machine and the versions of the paper build itself are read now.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from lakepaper import paths
from lakepaper.report.outputs import Run

#: Packages whose versions the paper build reports (the stages record their own in their manifests).
PACKAGES = (
    "lakepaper",
    "numpy",
    "pandas",
    "scipy",
    "rasterio",
    "geopandas",
    "shapely",
    "pyproj",
    "torch",
    "s2cloudless",
    "matplotlib",
    "papermill",
    "ipykernel",
    "jupyterlab",
    "earthengine-api",
    "pooch",
    "selenium",
)


@dataclass
class Git:
    commit: str = "unknown"
    dirty: bool | None = None  # None: not a git checkout, or git missing
    changed: list[str] = field(default_factory=list)  # tracked files with uncommitted changes
    untracked: int = 0

    @property
    def label(self) -> str:
        if self.dirty is None:
            return f"{self.commit} (not a git checkout, or git not installed)"
        if not self.dirty:
            return f"{self.commit} (clean)"
        return f"{self.commit} + uncommitted changes in {len(self.changed)} tracked file(s)"


def git_info(root: Path | None = None) -> Git:
    """``git rev-parse HEAD`` and whether tracked files differ from it (untracked files counted apart)."""
    root = root or paths.ROOT
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
        status = _git(root, "status", "--porcelain", "--untracked-files=normal")
    except (OSError, subprocess.SubprocessError):
        return Git()
    changed, untracked = [], 0
    for line in status.splitlines():
        if line.startswith("??"):
            untracked += 1
        elif line.strip():
            changed.append(line[3:])
    return Git(commit, bool(changed), changed, untracked)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True, timeout=20
    ).stdout


def machine() -> dict[str, Any]:
    """This machine: OS, CPU model and cores, memory (what the paper build ran on)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "architecture": platform.machine(),
        "cpus": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus usable"] = len(os.sched_getaffinity(0))
    cpu = _first_match(Path("/proc/cpuinfo"), "model name") or platform.processor()
    if cpu:
        info["cpu model"] = cpu
    mem_kb = _first_match(Path("/proc/meminfo"), "MemTotal")
    if mem_kb:
        with contextlib.suppress(ValueError):
            info["memory"] = f"{int(mem_kb.split()[0]) / 2**20:.1f} GiB"
    return info


def _first_match(path: Path, key: str) -> str:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each package ("not installed" when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def stage_versions(run: Run) -> tuple[list[str], dict[str, dict[str, str]]]:
    """(packages, stage -> package -> version) as recorded in the manifests."""
    table = {s: {k: str(v) for k, v in (m.get("versions") or {}).items()} for s, m in run.manifests.items()}
    packages = sorted({p for v in table.values() for p in v}, key=lambda p: (p != "python", p))
    return packages, table


def file_bytes(run: Run, stage: str, rel: str) -> int | None:
    try:
        return (run.stage_dir(stage) / rel).stat().st_size
    except OSError:
        return None


def human_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
