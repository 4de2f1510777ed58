"""What one profile's build holds: the finished stages' manifests, their files, and what is missing.

A :class:`Run` reads ``build/<profile>/<stage>/manifest.json`` of every stage it knows (the
pipeline's :data:`lakepaper.stages.STAGES`, the stages of :data:`lakepaper.stages.REGISTRY`,
and any other folder that holds a manifest). Nothing here fails because a stage has not run:
lookups raise :class:`Missing` with a sentence saying what is absent, and the paper shows that
sentence in place of the number, table or figure.

Only files a manifest lists are used (``outputs``), so a figure left half-written by a killed run,
or one written after the manifest, never reaches the paper.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from lakepaper import paths


class Missing(LookupError):
    """Something the paper asked for was not produced by this run; the message says what."""


@dataclass
class Run:
    """The finished stages of one profile."""

    profile: str
    root: Path  # build/<profile>
    stages: tuple[str, ...]  # every stage known, in pipeline order
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # finished stages only
    manifest_sha: dict[str, str] = field(default_factory=dict)  # sha256 of each manifest.json file
    problems: dict[str, str] = field(default_factory=dict)  # stage -> why its manifest is unusable

    @classmethod
    def load(cls, profile: str, *, root: str | Path | None = None, extra_stages: Iterable[str] = ()) -> Run:
        """Read every manifest under ``build/<profile>`` (or ``root``)."""
        from lakepaper.stages import STAGES

        base = Path(root) if root is not None else paths.build_root() / profile
        known = list(dict.fromkeys([*STAGES, *extra_stages]))
        if base.is_dir():  # stages the registries do not know yet, e.g. a new notebook
            known += sorted(p.parent.name for p in base.glob("*/manifest.json") if p.parent.name not in known)
        known.sort(key=_stage_key)
        run = cls(profile=profile, root=base, stages=tuple(known))
        for stage in known:
            path = base / stage / "manifest.json"
            if not path.exists():
                continue
            data = path.read_bytes()
            try:
                manifest = json.loads(data)
            except json.JSONDecodeError as exc:
                run.problems[stage] = f"manifest is not valid JSON ({exc}); rerun the stage"
                continue
            if not isinstance(manifest, dict):
                run.problems[stage] = "manifest is not a JSON object; rerun the stage"
                continue
            run.manifests[stage] = manifest
            run.manifest_sha[stage] = hashlib.sha256(data).hexdigest()
        return run

    # --- stages --------------------------------------------------------------------------------

    def done(self, stage: str) -> bool:
        return stage in self.manifests

    def manifest(self, stage: str) -> dict[str, Any]:
        """The stage's manifest, or :class:`Missing` saying the stage has not run."""
        if stage in self.manifests:
            return self.manifests[stage]
        if stage in self.problems:
            raise Missing(f"{stage}: {self.problems[stage]}")
        raise Missing(f"stage {stage} has not run for profile {self.profile}")

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    @cached_property
    def stale(self) -> dict[str, dict[str, str]]:
        """Stage -> {upstream stage: "changed" | "missing"} for the inputs that no longer match what it read.

        "changed": the upstream manifest is not the one whose sha256 the stage recorded (the upstream stage
        ran again since); "missing": the upstream stage has no finished manifest any more.
        """
        out: dict[str, dict[str, str]] = {}
        for stage, manifest in self.manifests.items():
            why = {}
            for up, sha in (manifest.get("inputs") or {}).items():
                if up not in self.stages:
                    continue  # a file input, not a stage
                if up not in self.manifest_sha:
                    why[up] = "missing"
                elif self.manifest_sha[up] != sha:
                    why[up] = "changed"
            if why:
                out[stage] = why
        return out

    # --- files ----------------------------------------------------------------------------------

    def outputs(self, stage: str) -> dict[str, str]:
        """Relative path -> sha256 of the files the stage's manifest lists (logs and timings included)."""
        m = self.manifest(stage)
        return {**(m.get("outputs") or {}), **(m.get("volatile") or {})}

    def file(self, stage: str, name: str) -> Path:
        """A file the stage wrote and listed in its manifest, or :class:`Missing`."""
        outputs = self.outputs(stage)
        if name not in outputs:
            raise Missing(f"{stage} did not write {name}")
        path = self.stage_dir(stage) / name
        if not path.is_file():
            raise Missing(f"{stage}/{name} is listed in its manifest but no longer on disk; rerun {stage}")
        return path

    def csv(self, stage: str, name: str, **kwargs: Any) -> pd.DataFrame:
        """A CSV table the stage wrote (see :meth:`file`)."""
        return pd.read_csv(self.file(stage, name), **kwargs)

    def figures(self, stage: str) -> list[Path]:
        """The stage's PNG figures (``figures/*.png`` listed in its manifest), sorted by name."""
        if not self.done(stage):
            return []
        names = sorted(n for n in self.outputs(stage) if n.startswith("figures/") and n.endswith(".png"))
        return [self.stage_dir(stage) / n for n in names if (self.stage_dir(stage) / n).is_file()]

    def extra(self, stage: str, *keys: str | int) -> Any:
        """A value inside the stage's manifest, e.g. ``extra("03_train", "test", "iou")``."""
        value: Any = self.manifest(stage)
        walked = []
        for key in keys:
            walked.append(str(key))
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                raise Missing(f"{stage} manifest has no {'.'.join(walked)}") from None
            if value is None:
                raise Missing(f"{stage} manifest: {'.'.join(walked)} is empty (not computed in this run)")
        return value

    def record(self, stage: str, table: str, column: str, value: Any) -> dict[str, Any]:
        """The row of a list-of-records table in the manifest whose ``column`` equals ``value``."""
        rows = self.extra(stage, table)
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get(column) == value:
                return row
        raise Missing(f"{stage} manifest: {table} has no row {column} = {value!r}")


def _stage_key(stage: str) -> tuple[int, str]:
    """Numbered stages in number order, anything else after them."""
    head = stage.split("_", 1)[0]
    return (int(head), stage) if head.isdigit() else (10**6, stage)
