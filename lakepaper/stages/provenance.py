"""Where a run's data came from, as its manifests record it, and whether it has a truth to compare with.

Stage 01 records its imagery source in its manifest under ``source`` (``{"source": "world"}``,
``{"source": "stac", "stac": ..., "area": ...}``, ``{"source": "cogs", ...}``). Stage 05 (which reads
stage 01) copies that record into its own manifest as ``imagery_source``, so that the stages after it
(07 reads 00 and 05, not 01) know the source through the stages they declare as read.

Only the simulated world has a truth: a stage compares with ``00_world/truth`` (and takes the world's
reference files as defaults) when the recorded imagery source is ``world`` and stage 00 built a world.
A build whose manifests record no source (made before sources were recorded) keeps the rule of that
time: a world exists and the profile is not ``paper``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakepaper.references import Resolved

#: The imagery source that has a truth: the simulated world.
WORLD = "world"
#: The key under which stage 05 (and the stages after it) record stage 01's imagery source.
IMAGERY_KEY = "imagery_source"


def manifest_record(stage_dir: Path | None, key: str) -> dict[str, Any] | None:
    """``key`` of the manifest in ``stage_dir`` when it is a record (a dict), else None (no manifest,
    no such key, or an older manifest)."""
    if stage_dir is None or not (Path(stage_dir) / "manifest.json").is_file():
        return None
    try:
        value = json.loads((Path(stage_dir) / "manifest.json").read_text()).get(key)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def kind(record: dict[str, Any] | None) -> str | None:
    """The source's kind (``world``, ``stac``, ``cogs``, ...) of a record, or None when none is recorded."""
    if not record:
        return None
    value = record.get("source", record.get("kind"))
    return str(value) if value else None


def imagery_source(composite_dir: Path | None = None, postprocess_dir: Path | None = None) -> dict | None:
    """The imagery source record: stage 01's ``source``, else the one stage 05 copied; None if neither
    records one."""
    return manifest_record(composite_dir, "source") or manifest_record(postprocess_dir, IMAGERY_KEY)


def has_truth(record: dict[str, Any] | None, world: Path | None, profile: str) -> bool:
    """Whether this run's data is the simulated world, so that its truth and reference files apply: the
    recorded source is ``world`` and stage 00 built a world (``world``: its folder). Without a recorded
    source (an older build), a world exists and the profile is not ``paper``."""
    built = world is not None and (Path(world) / "world.json").exists()
    if kind(record) is not None:
        return built and kind(record) == WORLD
    return built and profile != "paper"


def default_truth(given: str, world: Path, on_world: bool, record: dict[str, Any] | None) -> tuple[str, Path, str]:
    """The truth catalogue stages 07 and 08 compare with: ``given``, else the world's truth lakes when the
    imagery is the simulated world (``on_world``), else "none".

    Returns:
        (the truth, the world's truth file, a note to say when a world's truth exists but is left aside, or "").
    """
    world_truth = Path(world) / "truth" / "lakes.parquet"
    truth = given or (str(world_truth) if on_world and world_truth.exists() else "none")
    note = ""
    if not given and not on_world and world_truth.exists():
        note = (
            f"imagery source {kind(record) or 'not recorded'!r} is not the simulated world: "
            f"no truth to compare with ({world_truth} left aside)"
        )
    return truth, world_truth, note


def reference_record(r: Resolved) -> dict[str, Any] | None:
    """A reference dataset's manifest record (path, origin, bytes, column mapping) with its sha256 (a
    folder: of its listing, names and sizes, as ``lakepaper prereqs`` fingerprints it); None when off."""
    from lakepaper.prereqs import fingerprint

    record = r.record()
    if record is not None:
        record["sha256"] = fingerprint(Path(r.path))
    return record
