"""What ``make all PROFILE=paper`` needs before it starts, checked up front in one list.

The real run needs things the simulated world does not: the Earth Engine client and credentials
(stage 01 composites Sentinel-2 on Earth Engine), a CUDA GPU (stage 03 trains the full-size
U-Net), and the reference datasets of the post-processing and comparison stages. Each is checked
here in seconds, and everything missing is reported together, with where to get it, instead of a
traceback an hour into the run.

Reference files live under one folder, ``$LAKEPAPER_REFERENCES`` (default ``<repo>/references``),
at the paths of the one registry of reference datasets, :mod:`lakepaper.references` (:data:`REFERENCES`);
``LAKEPAPER_REF_<NAME>`` (e.g. ``LAKEPAPER_REF_GLAKES``) points one of them elsewhere. Checksums are
verified with :func:`pooch.file_hash`. We do not publish checksums we have not measured: where none
is known, the entry says "to be recorded on first download", and ``lakepaper prereqs --record``
writes the sha256 of the files present into ``<references>/checksums.txt`` (pooch registry format);
from then on they are verified against it.
A folder (the tiled rasters) is fingerprinted by the sha256 of its file listing (names and sizes),
which is cheap; its files are not hashed one by one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lakepaper import paths
from lakepaper import references as registry

#: One reference dataset of the real run: the registry's :class:`lakepaper.references.Dataset` (``name``,
#: ``title``, ``default`` = its path under the references folder, ``url``, ``how``, ``cite``, ``sha256``,
#: ``folder``).
Reference = registry.Dataset

#: The reference datasets the real run needs, from the one registry (:mod:`lakepaper.references`);
#: optional ones (HydroLAKES, stage 08's further catalogue) are not asked for.
REFERENCES: tuple[Reference, ...] = tuple(d for d in registry.DATASETS.values() if not d.optional)

REGISTRY_FILE = "checksums.txt"
PENDING = "checksum: to be recorded on first download (`lakepaper prereqs --profile paper --record`)"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # not ok, but not blocking


def references_dir(given: str | os.PathLike[str] | None = None) -> Path:
    return registry.references_dir(given)


def reference_path(ref: Reference, folder: Path) -> Path:
    return registry.real_path(ref, folder)


def read_registry(folder: Path) -> dict[str, str]:
    """name -> sha256 recorded in ``<references>/checksums.txt`` (pooch registry lines: ``name sha256:hex``)."""
    out = {}
    path = folder / REGISTRY_FILE
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("#"):
                out[parts[0]] = parts[1].split(":", 1)[-1].lower()
    return out


def fingerprint(path: Path) -> str:
    """sha256 of a file (pooch), or of a folder's listing (relative names and sizes)."""
    import pooch

    if path.is_file():
        return pooch.file_hash(str(path), alg="sha256")
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()} {f.stat().st_size}\n".encode())
    return h.hexdigest()


def check_references(folder: Path, *, verify: bool = True) -> list[Check]:
    registry = read_registry(folder)
    out = []
    for ref in REFERENCES:
        path = reference_path(ref, folder)
        label = f"{ref.name}: {ref.title}"
        get = f"get: {ref.url} — {ref.how}; cite {ref.cite}"
        expected = ref.sha256 or registry.get(ref.name)
        present = path.is_dir() and any(path.iterdir()) if ref.folder else path.is_file()
        if not present:
            checksum = f"expected sha256 {expected}" if expected else PENDING
            out.append(Check(label, False, f"not found at {path}", f"{get}; {checksum}"))
            continue
        if not verify:
            out.append(Check(label, True, f"{path} (checksum not verified: --quick)"))
            continue
        found = fingerprint(path)
        what = "listing sha256" if ref.folder else "sha256"
        if expected is None:
            out.append(Check(label, True, f"{path}; {what} {found[:16]}… ({PENDING})", warning=False))
        elif found == expected:
            out.append(Check(label, True, f"{path}; {what} matches"))
        else:
            out.append(
                Check(
                    label,
                    False,
                    f"{path}: {what} {found} differs from the expected {expected}",
                    f"re-download it ({ref.url}), or if the new release is intended, record it with --record",
                )
            )
    return out


def record_checksums(folder: Path) -> Path:
    """Write the sha256 of every reference present into ``<references>/checksums.txt``."""
    from lakepaper import io

    lines = [
        "# sha256 of the reference datasets as laid out here (pooch registry format), written by "
        "`lakepaper prereqs --profile paper --record`; a folder: sha256 of its listing (names and sizes)"
    ]
    for ref in REFERENCES:
        path = reference_path(ref, folder)
        if path.is_file() or (ref.folder and path.is_dir()):
            lines.append(f"{ref.name} sha256:{fingerprint(path)}")
    return io.write_text(folder / REGISTRY_FILE, "\n".join(lines) + "\n")


def check_earth_engine() -> list[Check]:
    import importlib.util

    if importlib.util.find_spec("ee") is None:
        return [
            Check("Earth Engine client", False, "earthengine-api is not installed", "pip install -e '.[gee]'"),
            Check("Earth Engine credentials", False, "not checked (no client)", "earthengine authenticate"),
        ]
    from importlib import metadata

    out = [Check("Earth Engine client", True, f"earthengine-api {metadata.version('earthengine-api')}")]
    from lakepaper.composite import gee

    where = [str(gee.EE_CREDENTIALS), str(gee.GCLOUD_CREDENTIALS), "$GOOGLE_APPLICATION_CREDENTIALS"]
    if gee.credentials_available():
        project = os.environ.get("EARTHENGINE_PROJECT")
        out.append(Check("Earth Engine credentials", True, "found" + (f"; project {project}" if project else "")))
    else:
        out.append(
            Check(
                "Earth Engine credentials",
                False,
                f"none in {', '.join(where)}",
                "run `earthengine authenticate` (or set up gcloud application-default credentials); "
                "set EARTHENGINE_PROJECT to your Earth Engine Cloud project",
            )
        )
    return out


def check_gpu() -> Check:
    allow_cpu = os.environ.get("LAKEPAPER_ALLOW_CPU") == "1"
    try:
        import torch
    except ImportError:
        return Check("CUDA GPU", False, "torch is not installed", "pip install -e .")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("CUDA GPU", True, f"{torch.cuda.device_count()} device(s): {names}")
    return Check(
        "CUDA GPU",
        False,
        f"torch {torch.__version__} sees no CUDA device; training the paper's U-Net (576 px patches, widths "
        "64-1024, up to 1000 epochs) is not practical on CPU",
        "run on a machine with an NVIDIA GPU and a CUDA build of torch"
        + ("" if allow_cpu else " (LAKEPAPER_ALLOW_CPU=1 makes this a warning)"),
        warning=allow_cpu,
    )


def check_disk(path: Path, need_gib: float = 1024) -> Check:
    probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free / 2**30
    ok = free >= need_gib
    return Check(
        "Free disk for build/",
        ok,
        f"{free:,.0f} GiB free at {probe}; the paper's composites alone are ~10 TB (exported tile by tile)",
        "" if ok else "point LAKEPAPER_BUILD at a larger disk",
        warning=True,
    )


def stage_parameters(profile: str) -> dict[str, dict]:
    """The parameters ``make`` recorded per stage (``build/<profile>/.params/<stage>.json``; empty if none)."""
    import json

    folder = paths.build_root() / profile / ".params"
    out = {}
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out[f.stem] = json.loads(f.read_text())
        except ValueError:
            out[f.stem] = {}
    return out


_STAC_EXAMPLE = (
    'make all PROFILE=paper PARAMS="-p source stac -p stac https://earth-search.aws.element84.com/v1 '
    "-p area '[90.0, 30.0, 91.0, 31.0]'\""
)


def check_imagery(given: dict) -> list[Check]:
    """Stage 01's source on real data: what it needs, and only that (no Earth Engine for ``stac``)."""
    source = given.get("source", "world")
    if source == "world":
        return [
            Check(
                "Imagery (stage 01)",
                False,
                "the paper profile has no simulated world: stage 01 needs a real source",
                f"give one, e.g. {_STAC_EXAMPLE}, or -p source cogs -p cogs FOLDER -p tile_grid GRID.gpkg",
            )
        ]
    if source == "stac":
        missing = [k for k in ("stac", "area") if not given.get(k)]
        return [
            Check(
                "Imagery (stage 01)",
                not missing,
                f"STAC source {given.get('stac') or '(none)'}, area {given.get('area') or '(none)'}",
                f"give {' and '.join('-p ' + k for k in missing)}" if missing else "",
            )
        ]
    if source == "cogs":
        out = []
        for k in ("cogs", "tile_grid"):
            path = Path(given[k]) if given.get(k) else None
            ok = path is not None and path.exists()
            out.append(
                Check(f"Imagery (stage 01): {k}", ok, str(path) if path else "not given", "" if ok else f"-p {k} PATH")
            )
        return out
    # gee: the credentials, and where the exports go
    dest = given.get("gee_destination") or "gcs"
    ok = dest != "gcs" or bool(given.get("gee_bucket"))
    return [
        *check_earth_engine(),
        Check(
            "Imagery (stage 01): Earth Engine export destination",
            ok,
            f"{dest}" + (f" gs://{given['gee_bucket']}" if given.get("gee_bucket") else ""),
            "" if ok else "-p gee_bucket BUCKET (a Cloud Storage bucket your Earth Engine project can write)",
        ),
    ]


def check_samples(given: dict) -> list[Check]:
    """Stage 02 on real data: sample polygons and labels (label rasters, or a threshold table and edits)."""
    regions = given.get("regions")
    labels = given.get("labels") or given.get("thresholds")
    ok_regions = bool(regions) and Path(regions).exists()
    return [
        Check(
            "Sample regions (stage 02)",
            ok_regions,
            str(regions) if regions else "not given (the paper profile has no simulated regions)",
            "" if ok_regions else "-p regions REGIONS.gpkg (polygons, any CRS, a region_type column of NR/AR/BR/IL/SL)",
        ),
        Check(
            "Sample labels (stage 02)",
            bool(labels),
            str(labels) if labels else "not given",
            ""
            if labels
            else "-p labels FOLDER_OR_MOSAIC (label rasters), or -p thresholds TABLE.csv -p edits EDITS.gpkg",
        ),
    ]


def check(
    profile: str, *, references: str | None = None, verify: bool = True, given: dict[str, dict] | None = None
) -> list[Check]:
    """Every prerequisite of ``profile`` (the simulated profiles need nothing external).

    Args:
        given: the stages' parameters (default: what ``make`` recorded, :func:`stage_parameters`); the
            imagery and sample checks ask only for what the chosen sources need.
    """
    if profile != "paper":
        return [Check(f"profile {profile}", True, "needs nothing external: stage 00 generates the simulated world")]
    given = stage_parameters(profile) if given is None else given
    folder = references_dir(references)
    return [
        *check_imagery(given.get("01_composite", {})),
        *check_samples(given.get("02_samples", {})),
        check_gpu(),
        check_disk(paths.build_root()),
        *check_references(folder, verify=verify),
    ]


def report(checks: Sequence[Check], *, profile: str, references: str | None = None, seconds: float = 0.0) -> str:
    lines = [f"PROFILE={profile} prerequisites ({seconds:.1f} s):"]
    for c in checks:
        tag = "ok     " if c.ok else "warning" if c.warning else "MISSING"
        lines.append(f"  {tag}  {c.name} — {c.detail}")
        if c.fix and not c.ok:
            lines.append(f"           {c.fix}")
    blocking = [c for c in checks if not c.ok and not c.warning]
    if profile == "paper":
        folder = references_dir(references)
        lines.append(
            f"Reference folder: {folder} (set LAKEPAPER_REFERENCES, or LAKEPAPER_REF_<NAME> for one file). "
            "Stage 05 takes each as the parameter of the same name, e.g. "
            "`lakepaper run 05_postprocess --profile paper -p glakes PATH`."
        )
    if blocking:
        lines.append(f"{len(blocking)} of {len(checks)} prerequisites missing: nothing was run. Fix the list above.")
    else:
        lines.append(f"all {len(checks)} prerequisites present.")
    return "\n".join(lines)


def main(profile: str, *, references: str | None = None, record: bool = False, verify: bool = True) -> int:
    """The ``lakepaper prereqs`` command: print the list; exit 1 when anything blocking is missing."""
    t0 = time.perf_counter()
    if record:
        if profile != "paper":
            print(f"profile {profile}: no reference files to record")
            return 0
        path = record_checksums(references_dir(references))
        print(f"recorded checksums of the references present: {path}")
    checks = check(profile, references=references, verify=verify)
    print(report(checks, profile=profile, references=references, seconds=time.perf_counter() - t0))
    return 1 if any(not c.ok and not c.warning for c in checks) else 0
