"""Reading and writing rasters, vectors and manifests, atomically.

Every file a stage writes goes to a temporary name beside its target and is
renamed into place only when complete, so an interrupted stage never leaves a
file that looks finished. A stage ends by writing its manifest, last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine

from lakepaper.errors import InputError

if TYPE_CHECKING:
    import geopandas

#: GeoTIFF creation options: tiled, deflate-compressed, with overviews-ready blocks (COG layout
#: needs a copy step; tiled + deflate keeps writes fast and readers efficient).
GTIFF_OPTIONS: dict[str, Any] = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
    "compress": "deflate",
    "zlevel": 1,
}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    Example:
        >>> with atomic_path(tmp / "a.txt") as t:  # doctest: +SKIP
        ...     t.write_text("done")
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON atomically, keys sorted so equal content gives equal bytes."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_raster(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    crs: CRS | str,
    transform: Affine,
    nodata: float | int | None = None,
    band_names: Sequence[str] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Path:
    """Write a (bands, rows, cols) or (rows, cols) array as a tiled, compressed GeoTIFF.

    Band names go into the band descriptions; ``tags`` into the dataset metadata
    (e.g. ``SCALE=1000``), so a reader can undo integer scaling.
    """
    arr = data[np.newaxis] if data.ndim == 2 else data
    count, height, width = arr.shape
    profile = dict(
        GTIFF_OPTIONS,
        count=count,
        height=height,
        width=width,
        dtype=arr.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    )
    if width < 256 or height < 256:
        profile.update(blockxsize=16 * max(1, min(width, 256) // 16), blockysize=16 * max(1, min(height, 256) // 16))
        if width < 16 or height < 16:
            profile.pop("tiled"), profile.pop("blockxsize"), profile.pop("blockysize")
    if arr.dtype.kind == "f" or arr.dtype.itemsize > 1:
        profile["predictor"] = 3 if arr.dtype.kind == "f" else 2
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr)
        if band_names:
            for i, name in enumerate(band_names, start=1):
                dst.set_band_description(i, name)
        if tags:
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
    return Path(path)


def read_raster(path: str | os.PathLike[str], *, bands: Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
    """Read a GeoTIFF; return the array (bands, rows, cols) and its profile plus tags and band names.

    Raises:
        InputError: the file is missing or not a readable raster.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "raster file not found")
    try:
        with rasterio.open(p) as src:
            arr = src.read(list(bands) if bands else None)
            meta = dict(src.profile)
            meta["tags"] = src.tags()
            meta["band_names"] = list(src.descriptions)
            meta["bounds"] = src.bounds
    except RasterioIOError as exc:
        raise InputError(p, f"not a readable GeoTIFF ({exc})") from exc
    return arr, meta


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_tree(root: str | os.PathLike[str], *, exclude: Sequence[str] = ("manifest.json",)) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` (sorted; hidden files and folders skipped)."""
    root = Path(root)
    out: dict[str, str] = {}
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if f.is_file() and f.name not in exclude and not any(part.startswith(".") for part in rel.parts):
            out[f.relative_to(root).as_posix()] = sha256_file(f)
    return out


def versions(packages: Sequence[str] = ("numpy", "rasterio", "geopandas", "shapely", "torch", "s2cloudless")) -> dict:
    """Versions of Python and the packages that shape results."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def begin_stage(stage_dir: str | os.PathLike[str]) -> Path:
    """Start (or restart) a stage: remove its manifest and what a killed earlier run left half-written.

    A run killed hard (SIGKILL, power loss) cannot clean up: its temporary files (hidden names
    ending in ``.partial``, or hidden ``.partial`` folders) stay. They are never taken as
    finished, but are removed here so that they do not pile up.
    """
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "manifest.json").unlink(missing_ok=True)
    for f in sorted(stage_dir.rglob(".*"), reverse=True):
        if ".partial" in f.name:
            shutil.rmtree(f) if f.is_dir() else f.unlink(missing_ok=True)
    return stage_dir


#: Files whose content records *when* or *how fast* something ran (logs, timings): hashed in a
#: manifest under ``volatile``, apart from ``outputs``, so that two runs with the same seed have equal
#: ``outputs`` (the determinism the tests and reviewers check).
VOLATILE = ("*.log", "timing.csv")


def split_volatile(hashes: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(outputs, volatile) of a ``hash_tree`` result, by the patterns of :data:`VOLATILE`."""
    import fnmatch

    volatile = {k: v for k, v in hashes.items() if any(fnmatch.fnmatch(Path(k).name, p) for p in VOLATILE)}
    return {k: v for k, v in hashes.items() if k not in volatile}, volatile


def write_manifest(
    stage_dir: str | os.PathLike[str],
    *,
    stage: str,
    parameters: Mapping[str, Any],
    inputs: Mapping[str, str] | None = None,
    started: float,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``manifest.json`` last: parameters, input and output hashes, versions, wall time.

    Its presence is what marks a stage as finished. Logs and timings are hashed under ``volatile``
    (:data:`VOLATILE`), every other file under ``outputs``.
    """
    stage_dir = Path(stage_dir)
    outputs, volatile = split_volatile(hash_tree(stage_dir))
    manifest = {
        "stage": stage,
        "parameters": dict(parameters),
        "inputs": dict(inputs or {}),
        "outputs": outputs,
        "volatile": volatile,
        "versions": versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
        "wall_seconds": round(time.time() - started, 2),
    }
    if extra:
        manifest.update(extra)
    return write_json(stage_dir / "manifest.json", manifest)


def read_manifest(stage_dir: str | os.PathLike[str]) -> dict:
    """The manifest of a finished stage.

    Raises:
        InputError: the stage has not finished (no manifest).
    """
    path = Path(stage_dir) / "manifest.json"
    if not path.exists():
        raise InputError(path, "stage not finished (no manifest): run the earlier stage first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"manifest is not valid JSON ({exc}); rerun the stage") from exc


#: The date GDAL is told to stamp into GeoPackages and DBF headers, so equal data give equal bytes.
FIXED_DATE = "2024-01-01"


@contextlib.contextmanager
def _fixed_ogr_date() -> Iterator[None]:
    """Fix the timestamp GDAL writes into GeoPackages, restoring the previous setting after."""
    import pyogrio

    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": f"{FIXED_DATE}T00:00:00.000Z"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def write_vector(gdf: geopandas.GeoDataFrame, path: str | os.PathLike[str], geometry_type: str) -> Path:
    """Write a GeoPackage or Shapefile atomically and byte-reproducibly; the layer is named after the file.

    GDAL stamps GeoPackages (``gpkg_contents.last_change``) and DBF headers with the current date; both are
    fixed to ``FIXED_DATE`` so equal frames give equal bytes. The file is written under a temporary name
    beside the target and renamed into place (a Shapefile's parts one by one, ``.shp`` last).

    Args:
        gdf: the frame to write.
        path: target ``.gpkg`` or ``.shp``.
        geometry_type: the layer's declared type ("Polygon", "MultiPolygon", "LineString", "Point"); with
            "MultiPolygon" single polygons are promoted. Declared explicitly so empty layers keep their type.
    """
    import pyogrio  # here, not at the top: reading and writing rasters (prediction on a GPU machine) needs no vectors
    import shapely

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layer = path.stem
    if geometry_type.startswith("Multi") and len(gdf):
        gdf = gdf.set_geometry(
            gdf.geometry.apply(lambda g: g if g.geom_type.startswith("Multi") else shapely.MultiPolygon([g]))
        )
    if path.suffix == ".gpkg":
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial.gpkg")
        try:
            with _fixed_ogr_date():
                pyogrio.write_dataframe(gdf, tmp, layer=layer, driver="GPKG", geometry_type=geometry_type)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
    if path.suffix == ".shp":
        tmp_dir = path.with_name(f".{path.stem}.{os.getpid()}.partial")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir()
        try:
            pyogrio.write_dataframe(
                gdf,
                tmp_dir / path.name,
                layer=layer,
                driver="ESRI Shapefile",
                geometry_type=geometry_type,
                encoding="UTF-8",
                layer_options={"DBF_DATE_LAST_UPDATE": FIXED_DATE},
            )
            parts = sorted(tmp_dir.iterdir(), key=lambda p: p.suffix == ".shp")  # .shp last: it marks done
            for p in parts:
                os.replace(p, path.with_name(p.name))
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return path
    raise ValueError(f"unsupported vector format: {path}")
