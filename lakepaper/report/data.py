"""What data a run used, as its manifests record it: never inferred from the profile's name.

* the imagery: stage 01's ``source`` record (``world``, ``stac`` with its catalog and area, ``cogs`` with
  its folder and tile grid); when stage 01 has not run, the copy a later stage recorded as
  ``imagery_source`` (:mod:`lakepaper.stages.provenance`); a stage 01 manifest without it is a build
  made before sources were recorded: "source not recorded";
* the samples: stage 02's ``regions`` parameter (given polygons) or, without one, the simulated
  world's regions; its ``thresholds``/``edits``/``labels`` when given;
* each reference dataset: the ``references`` records of stages 05 and 08 (path, origin: simulated,
  real or given, size in bytes, sha256 where recorded);
* the post-processing's two manual review layers: stage 05's ``river_edits`` and ``edits`` as it resolved
  them, with their feature counts (:mod:`lakepaper.postprocess.review`).

The page's banner and colophon (:mod:`lakepaper.report.html`) are written from :func:`data_sources`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lakepaper.report.outputs import Run

#: The imagery source that is simulated.
WORLD = "world"
#: Stages whose manifests carry a copy of stage 01's record, most direct first.
IMAGERY_COPIES = ("05_postprocess", "08_comparison", "07_distribution")
#: Stages whose manifests record the reference datasets they read.
REFERENCE_STAGES = ("05_postprocess", "08_comparison")
NOT_RECORDED = "source not recorded"


@dataclass(frozen=True)
class Reference:
    """One reference dataset as one stage used it."""

    name: str
    stage: str
    origin: str  # "simulated", "real", "given", "off", or "not recorded" (an older manifest)
    path: str = ""
    bytes: int | None = None
    sha256: str | None = None


@dataclass
class DataSources:
    """The data of one build, from its manifests."""

    imagery_kind: str | None  # "world", "stac", "cogs", ...; None: not recorded, or stage 01 not run
    imagery: str  # one line for the reader
    imagery_stage: str | None  # the manifest it was read from; None: no stage recorded one
    samples: str
    samples_simulated: bool | None  # None: stage 02 has not run
    references: list[Reference] = field(default_factory=list)
    reviews: str = "stage 05 has not run"  # the post-processing's two manual review layers, as stage 05 applied them

    @property
    def simulated(self) -> bool:
        """The imagery is the simulated world."""
        return self.imagery_kind == WORLD

    @property
    def recorded(self) -> bool:
        """A stage recorded the imagery source (False for a build made before sources were recorded)."""
        return self.imagery_kind is not None

    @property
    def unrecorded(self) -> bool:
        """Stages ran, but none recorded the imagery source (an older build)."""
        return self.imagery_kind is None and self.imagery.startswith(NOT_RECORDED)

    def simulated_parts(self) -> list[str]:
        """What of this run's data is simulated: "imagery", "samples", "reference <name>"..."""
        parts = ["imagery"] if self.simulated else []
        if self.samples_simulated:
            parts.append("samples")
        names = dict.fromkeys(r.name for r in self.references if r.origin == "simulated")
        return parts + [f"reference {n}" for n in names]


def _kind(record: Any) -> str | None:
    if isinstance(record, dict):
        value = record.get("source", record.get("kind"))
        return str(value) if value else None
    return str(record) if isinstance(record, str) and record else None


def describe_imagery(record: Any) -> str:
    """One line for an imagery source record."""
    kind = _kind(record)
    if kind is None:
        return NOT_RECORDED
    if kind == WORLD:
        return "simulated world (stage 00's synthetic Sentinel-2 scenes)"
    r = record if isinstance(record, dict) else {}
    if kind == "stac":
        text = f"STAC catalog {r.get('stac', '?')}, area {_short(r.get('area', '?'))}"
        if r.get("tiles"):
            text += f" ({len(r['tiles'])} tiles)"
        mask = r.get("cloud_mask") or {}
        if isinstance(mask, dict) and mask.get("SCL only"):
            text += f"; cloud mask from SCL only for {', '.join(map(str, mask['SCL only']))}"
        return text
    if kind == "cogs":
        return f"composites (COGs) folder {r.get('cogs', '?')}, tile grid {r.get('tile_grid', '?')}"
    rest = ", ".join(f"{k} {_short(v)}" for k, v in r.items() if k not in ("source", "kind", "tiles"))
    return f"{kind}" + (f": {rest}" if rest else "")


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _imagery(run: Run) -> tuple[str | None, str, str | None]:
    if run.done("01_composite"):
        record = run.manifests["01_composite"].get("source")
        if _kind(record) is None:
            return None, f"{NOT_RECORDED} (stage 01 ran before sources were recorded: rerun it)", "01_composite"
        return _kind(record), describe_imagery(record), "01_composite"
    for stage in IMAGERY_COPIES:
        record = run.manifests.get(stage, {}).get("imagery_source")
        if _kind(record) is not None:
            return _kind(record), describe_imagery(record) + f" (as {stage} recorded it)", stage
    if any(run.done(s) for s in IMAGERY_COPIES):
        return None, f"{NOT_RECORDED} (stage 01 has not run here)", None
    return None, "stage 01 has not run", None


def _samples(run: Run) -> tuple[str, bool | None]:
    if not run.done("02_samples"):
        return "stage 02 has not run", None
    m = run.manifests["02_samples"]
    p = m.get("parameters") or {}
    record = m.get("source") if isinstance(m.get("source"), dict) else m.get("samples_source")
    given = {k: p.get(k) for k in ("regions", "labels", "thresholds", "edits") if p.get(k)}
    if isinstance(record, dict) and _kind(record):
        kind = _kind(record)
        rest = ", ".join(f"{k} {_short(v)}" for k, v in record.items() if k not in ("source", "kind"))
        simulated = kind == WORLD
        text = ("the simulated world's regions" if simulated else kind) + (f": {rest}" if rest else "")
    elif p.get("regions"):
        simulated = False
        text = f"given regions {p['regions']}"
    else:
        simulated = True
        text = "the simulated world's sample regions (stage 00's regions.gpkg)"
    extras = [f"{k} {v}" for k, v in given.items() if k != "regions"]
    if extras:
        text += "; given " + ", ".join(extras)
    elif simulated:
        text += "; labels: NDWI thresholds and the simulated analyst's edits"
    return text, simulated


def _references(run: Run) -> list[Reference]:
    out = []
    for stage in REFERENCE_STAGES:
        records = (run.manifests.get(stage, {}).get("parameters") or {}).get("references")
        if not isinstance(records, dict):
            continue
        for name, rec in records.items():
            if not isinstance(rec, dict):
                out.append(Reference(name, stage, "off"))
                continue
            size = rec.get("bytes")
            out.append(
                Reference(
                    name,
                    stage,
                    str(rec.get("origin") or "not recorded"),
                    str(rec.get("path", "")),
                    int(size) if isinstance(size, int | float) else None,
                    rec.get("sha256"),
                )
            )
    return out


def _reviews(run: Run) -> str:
    """Stage 05's two manual review layers (``river_edits``, ``edits``) and their features, or "none"."""
    if not run.done("05_postprocess"):
        return "stage 05 has not run"
    m = run.manifests["05_postprocess"]
    p, counts = m.get("parameters") or {}, m.get("reviews") or {}
    parts = []
    for name, param in (("river", "river_edits"), ("final", "edits")):
        if p.get(param):
            n = counts.get(name)
            parts.append(f"{name} review {_short(p[param])}" + (f" ({n} edits)" if n is not None else ""))
    return "; ".join(parts) or "no review layer applied"


def data_sources(run: Run) -> DataSources:
    """The imagery, samples, reference datasets and review layers of a build, from its manifests."""
    kind, imagery, stage = _imagery(run)
    samples, samples_simulated = _samples(run)
    return DataSources(kind, imagery, stage, samples, samples_simulated, _references(run), _reviews(run))
