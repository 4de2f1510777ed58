"""The Earth Engine backend of stage 01: the paper's composite (section 2.1) as a server-side graph.

The same recipe as the local backend (:mod:`lakepaper.composite.local`, :mod:`~lakepaper.composite.masks`),
every number taken from ``p = lakepaper.params.resolve(profile)``:

1. ``s2_collection`` (S2_SR_HARMONIZED) filtered by the tile's export region, by acquisition date in
   ``start_date..end_date`` (**end inclusive**, as ``local.select_scenes``: Earth Engine's end is
   exclusive, so the day after ``end_date`` is passed) and by ``CLOUDY_PIXEL_PERCENTAGE <
   max_scene_cloud_pct``; joined with ``cloud_collection`` (S2_CLOUD_PROBABILITY) on ``system:index``
   (``ee.Join.saveFirst`` + ``ee.Filter.equals``, as Earth Engine's s2cloudless tutorial does).
2. Per scene: cloud = probability > ``cloud_prob_threshold``; shadow = dark NIR (B8 <
   ``nir_dark_threshold`` x 10000, outside SCL water) inside the cloud mask projected up to
   ``cloud_proj_dist_km`` away from the sun (``directionalDistanceTransform`` towards
   ``90 - MEAN_SOLAR_AZIMUTH_ANGLE``); cloud | shadow eroded and dilated in the order of
   ``cloud_morphology`` (``focalMin`` of ``cloud_erode_m`` and ``focalMax`` of ``cloud_buffer_m``,
   circles in metres, run at the tutorial's 20 m, ``MORPHOLOGY_SCALE_M``; the default is the buffer
   alone, the tutorial's erosion first is ``("erode", "dilate")``: see ``lakepaper.params`` and
   :mod:`~lakepaper.composite.masks`); SCL ``scl_snow_class`` (snow/ice) and no data removed;
   NDWI = normalizedDifference(B3, B8) per scene.
3. The mean of B2, B3, B4, B11 (reflectance) and NDWI over the clear observations, plus their
   count, bands ordered as ``composite_bands`` then ``clear_count``; x ``composite_scale`` to int16,
   ``-32768`` where nothing was seen. Image properties SCALE, BANDS, COUNT_BAND, RECIPE (and TILE,
   dates, N_SCENES) carry the scaling; a downloaded file gets the GeoTIFF tags, band descriptions
   and nodata of ``local.composite_tile`` (:func:`tag_tile`), so ``local.read_composite`` reads it.

Where the tutorial and the local backend differ, this module follows the local one:

* scenes with ``CLOUDY_PIXEL_PERCENTAGE < max`` are kept (the paper's wording), the tutorial uses ``<=``;
* by default no erosion before the buffer (``cloud_morphology``, measured in ``benchmarks/cloud_mask_recipe.py``);
* a pixel is no data (never clear, never cloud nor dark) when an L2A band or SCL is 0 or the
  probability is 255 (Earth Engine usually masks these already; the rule is kept for parity);
* snow/ice removal is the paper's, not the tutorial's.

Two differences from the local backend are kept on purpose, both the tutorial's: the cloud
projection runs on its 100 m working grid (``PROJECTION_SCALE_M``; ``cloud_proj_dist_km`` x 1000 /
100 pixels), where the local backend drags the mask at 10 m; and the erosion and buffer run on its
20 m grid (``MORPHOLOGY_SCALE_M``: ``focalMin(2).focalMax(BUFFER*2/20).reproject(scale=20)`` with
``BUFFER = 50`` is 40 m then 100 m), where the local backend uses disks of the same radii at 10 m.
Each coarser grid gives a coarser version of the same set at a fraction of the cost.

Tiles: :func:`make_tiles` cuts an area into tiles of a UTM grid; each tile is exported with a margin
of ``edge_px`` x ``resolution_m`` metres (:func:`export_bounds`), so neighbours overlap by the window
edge that inference discards. Large areas: :func:`export_tiles` (Drive or Cloud Storage tasks, COG,
one file per tile); small areas: :func:`download_tile`. At global scale the tiles come from the land
grid (:mod:`lakepaper.composite.landgrid`) and the tasks are run, polled, retried, downloaded and
verified from a ledger that survives crashes (:mod:`lakepaper.composite.exports`,
``lakepaper composite gee``).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ee
import google.auth.exceptions
import numpy as np
import rasterio

from lakepaper import io
from lakepaper.composite.kernel import DN_SCALE, MEAN_BANDS
from lakepaper.composite.local import COUNT_BAND, NODATA, RECIPE_PARAMS  # noqa: F401  (one recipe, re-exported)
from lakepaper.composite.masks import PROB_NODATA, SCL_WATER, morphology_steps
from lakepaper.errors import InputError, ParameterError

# RECIPE_PARAMS (imported from local): one tuple of recipe parameters for both backends; the tests
# check that each backend reads exactly these (and this one GEE_PARAMS besides).
#: Parameters only this backend reads: where the scenes come from and the tiles' inference margin.
GEE_PARAMS = ("cloud_collection", "edge_px", "s2_collection")

#: The tutorial's working scale of the cloud projection, metres (module docstring).
PROJECTION_SCALE_M = 100.0
#: The tutorial's working scale of the cloud | shadow erosion and buffer, metres (module docstring).
MORPHOLOGY_SCALE_M = 20.0
#: Earth Engine's shard size of file exports (``shardSize``); ``fileDimensions`` must be a multiple of it.
SHARD_PX = 256
#: L2A and SCL value of a pixel without data (as in :mod:`~lakepaper.composite.masks`).
NO_DATA_DN = 0
#: Name under which the join stores each scene's cloud-probability image, and that image's band.
JOIN_KEY, PROBABILITY_BAND = "s2cloudless", "probability"
#: The L2A bands a scene needs (10 m B2 B3 B4 B8, 20 m B11 and SCL, read by nearest neighbour).
L2A_BANDS, SCL_BAND = ("B2", "B3", "B4", "B8", "B11"), "SCL"
#: Largest magnitude of a composite value: int16 without the nodata value.
INT16_LIMIT = int(np.iinfo(np.int16).max)
#: Seconds a download may take before it is abandoned (transport, not method).
DOWNLOAD_TIMEOUT_S = 600
#: Where ``earthengine authenticate`` stores credentials; and the gcloud default credentials.
EE_CREDENTIALS = Path("~/.config/earthengine/credentials")
GCLOUD_CREDENTIALS = Path("~/.config/gcloud/application_default_credentials.json")


@dataclass(frozen=True)
class Tile:
    """One tile: its name, the EPSG code of its (UTM) CRS and its (left, bottom, right, top) in metres.

    The bounds lie on the ``resolution_m`` grid and exclude the inference margin (:func:`export_bounds`).
    """

    name: str
    epsg: int
    bounds: tuple[float, float, float, float]


# --- credentials --------------------------------------------------------------------------------


def credentials_available() -> bool:
    """Whether Earth Engine credentials exist on disk (no network: a cheap check before ``ee.Initialize``)."""
    candidates = [EE_CREDENTIALS.expanduser(), GCLOUD_CREDENTIALS.expanduser()]
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        candidates.append(Path(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]).expanduser())
    return any(c.is_file() for c in candidates)


def initialize(project: str | None = None) -> None:
    """Initialise Earth Engine for real use.

    Args:
        project: Google Cloud project registered for Earth Engine (None: the credentials' own).

    Raises:
        InputError: no credentials on disk, or Earth Engine refused them.
    """
    where = EE_CREDENTIALS.expanduser()
    if not credentials_available():
        raise InputError(where, "no Earth Engine credentials: run `earthengine authenticate` (or set up gcloud ADC)")
    try:
        ee.Initialize(project=project)
    except (ee.EEException, google.auth.exceptions.GoogleAuthError, OSError) as exc:
        raise InputError(where, f"Earth Engine initialisation failed ({exc}); check credentials and project") from exc


# --- parameters and tiles -------------------------------------------------------------------------


def _check_params(p: dict[str, Any]) -> list[str]:
    bands = list(p["composite_bands"])
    if any(b not in MEAN_BANDS for b in bands) or len(set(bands)) != len(bands):
        raise ParameterError("composite_bands", f"{bands}: each of {list(MEAN_BANDS)} at most once")
    scale = p["composite_scale"]
    if not isinstance(scale, int) or not 0 < scale <= DN_SCALE:
        raise ParameterError("composite_scale", f"expected an int in 1..{DN_SCALE}, got {scale!r}")
    return bands


def _dates(p: dict[str, Any]) -> tuple[str, str]:
    """``start_date`` and the day after ``end_date`` (Earth Engine's exclusive end), as ISO strings."""
    days = {}
    for name, value in (("start_date", p["start_date"]), ("end_date", p["end_date"])):
        try:
            days[name] = dt.date.fromisoformat(str(value))
        except ValueError as exc:
            raise ParameterError(name, f"expected an ISO date like 2017-03-28, got {value!r}") from exc
    if days["end_date"] < days["start_date"]:
        raise ParameterError("end_date", f"{days['end_date']} is before start_date {days['start_date']}: empty range")
    return days["start_date"].isoformat(), (days["end_date"] + dt.timedelta(days=1)).isoformat()


def _check_extent(name: str, what: str, bounds: Sequence[float]) -> None:
    left, bottom, right, top = bounds
    if not all(math.isfinite(v) for v in bounds) or right <= left or top <= bottom:
        raise ParameterError(name, f"{what}: empty geometry, bounds {tuple(bounds)}")


def _check_tile(tile: Tile, res: float) -> None:
    _check_extent("tile", tile.name, tile.bounds)
    left, bottom, right, top = tile.bounds
    for extent in (right - left, top - bottom):
        if not math.isclose(extent / res, round(extent / res)):
            raise ParameterError("tile", f"{tile.name}: extent {extent} m is not a multiple of {res} m")


def make_tiles(bounds: Sequence[float], epsg: int, tile_px: int, p: dict[str, Any], *, prefix: str = "T") -> list[Tile]:
    """Cut an area into square tiles of ``tile_px`` pixels on the ``resolution_m`` grid.

    Args:
        bounds: (left, bottom, right, top) of the area in metres of ``epsg``; snapped outwards to the grid.
        epsg: EPSG code (a UTM zone).
        tile_px: tile side in pixels (without the inference margin).
        p: parameters.
        prefix: start of each tile's name, followed by row and column.

    Raises:
        ParameterError: empty area or a tile size below one pixel.
    """
    _check_extent("bounds", "area", bounds)
    if tile_px < 1:
        raise ParameterError("tile_px", f"expected at least 1 pixel, got {tile_px}")
    res, (left, bottom, right, top) = float(p["resolution_m"]), bounds
    side = tile_px * res
    x0, y1 = math.floor(left / res) * res, math.ceil(top / res) * res
    cols, rows = math.ceil((right - x0) / side), math.ceil((y1 - bottom) / side)
    return [
        Tile(f"{prefix}{r:03d}_{c:03d}", epsg, (x0 + c * side, y1 - (r + 1) * side, x0 + (c + 1) * side, y1 - r * side))
        for r in range(rows)
        for c in range(cols)
    ]


def export_bounds(tile: Tile, p: dict[str, Any]) -> tuple[float, float, float, float]:
    """The tile's bounds grown by the inference edge (``edge_px`` x ``resolution_m``) on every side."""
    res = float(p["resolution_m"])
    _check_tile(tile, res)
    margin = p["edge_px"] * res
    left, bottom, right, top = tile.bounds
    return (left - margin, bottom - margin, right + margin, top + margin)


def export_grid(tile: Tile, p: dict[str, Any]) -> tuple[str, list[float], tuple[int, int]]:
    """CRS, row-major affine ``[xScale, 0, left, 0, -yScale, top]`` and (width, height) of the export."""
    res = float(p["resolution_m"])
    left, bottom, right, top = export_bounds(tile, p)
    size = (round((right - left) / res), round((top - bottom) / res))
    return f"EPSG:{tile.epsg}", [res, 0.0, left, 0.0, -res, top], size


def export_region(tile: Tile, p: dict[str, Any]) -> ee.Geometry:
    """The export region (tile plus margin) as a planar rectangle in the tile's CRS."""
    return ee.Geometry.Rectangle(list(export_bounds(tile, p)), proj=f"EPSG:{tile.epsg}", geodesic=False)


# --- the graph ------------------------------------------------------------------------------------


def scenes(region: ee.Geometry, p: dict[str, Any]) -> ee.ImageCollection:
    """The L2A scenes the paper keeps over ``region``, each with its cloud probability under ``JOIN_KEY``."""
    start, end = _dates(p)
    sr = (
        ee.ImageCollection(p["s2_collection"])
        .filterBounds(region)
        .filterDate(start, end)
        .filter(ee.Filter.lt("CLOUDY_PIXEL_PERCENTAGE", p["max_scene_cloud_pct"]))
    )
    prob = ee.ImageCollection(p["cloud_collection"]).filterBounds(region).filterDate(start, end)
    condition = ee.Filter.equals(leftField="system:index", rightField="system:index")
    return ee.ImageCollection(ee.Join.saveFirst(JOIN_KEY).apply(primary=sr, secondary=prob, condition=condition))


def clear_mask(img: ee.Image, p: dict[str, Any]) -> ee.Image:
    """1 where a scene (joined by :func:`scenes`) is a clear observation, 0 elsewhere."""
    prob = ee.Image(img.get(JOIN_KEY)).select(PROBABILITY_BAND)
    scl = img.select(SCL_BAND)
    valid = (
        img.select(list(L2A_BANDS))
        .neq(NO_DATA_DN)
        .reduce(ee.Reducer.min())
        .And(scl.neq(NO_DATA_DN))
        .And(prob.neq(PROB_NODATA))
        .unmask(0)
    )
    cloud = prob.gt(p["cloud_prob_threshold"]).And(valid).unmask(0)
    dark = img.select("B8").lt(p["nir_dark_threshold"] * DN_SCALE).And(scl.neq(SCL_WATER)).And(valid).unmask(0)
    toward_sun = ee.Number(90).subtract(ee.Number(img.get("MEAN_SOLAR_AZIMUTH_ANGLE")))  # degrees: azimuth -> math
    reach_px = round(p["cloud_proj_dist_km"] * 1000.0 / PROJECTION_SCALE_M)
    projection = (
        cloud.directionalDistanceTransform(toward_sun, reach_px)
        .reproject(crs=img.select("B8").projection(), scale=PROJECTION_SCALE_M)
        .select("distance")
        .mask()
    )
    shadow = projection.And(dark).unmask(0)
    masked = cloud.Or(shadow)
    for op, radius_m in morphology_steps(p):
        if radius_m <= 0:
            continue
        focal = masked.focalMin if op == "erode" else masked.focalMax
        masked = focal(radius=radius_m, kernelType="circle", units="meters")
    masked = masked.reproject(crs=img.select("B8").projection(), scale=MORPHOLOGY_SCALE_M)
    snow = scl.eq(p["scl_snow_class"]).unmask(0)
    return valid.And(masked.Or(snow).Not())


def scene_observation(img: ee.Image, bands: list[str], p: dict[str, Any]) -> ee.Image:
    """A scene's composite bands (reflectance, NDWI) and a ``COUNT_BAND`` of 1, masked to its clear pixels."""
    clear = clear_mask(img, p)
    reflectance = img.select(["B2", "B3", "B4", "B11"]).toFloat().divide(DN_SCALE)
    ndwi = img.normalizedDifference(["B3", "B8"]).rename("NDWI")
    observation = reflectance.addBands(ndwi).select(bands).addBands(clear.rename(COUNT_BAND))
    return observation.toFloat().updateMask(clear)  # one pixel type for every image of the collection


def _unobserved(bands: list[str]) -> ee.Image:
    """A fully masked image with the observation's bands: keeps the reduction defined with no scene."""
    return ee.Image.constant([0] * (len(bands) + 1)).rename([*bands, COUNT_BAND]).toFloat().selfMask()


def composite_image(tile: Tile, p: dict[str, Any]) -> ee.Image:
    """The int16 composite of one tile as an Earth Engine image (not yet computed).

    Bands: ``composite_bands`` x ``composite_scale`` (``NODATA`` where no clear observation), then
    ``clear_count``. Properties: SCALE, BANDS, COUNT_BAND, NODATA, TILE, START_DATE, END_DATE,
    RECIPE and N_SCENES (server-side).

    Raises:
        ParameterError: unknown or repeated band, bad scale, bad or backwards dates, empty tile.
    """
    bands = _check_params(p)
    region = export_region(tile, p)
    chosen = scenes(region, p)
    observations = chosen.map(lambda img: scene_observation(ee.Image(img), bands, p)).merge(
        ee.ImageCollection([_unobserved(bands)])
    )
    count = observations.select([COUNT_BAND]).reduce(ee.Reducer.count()).rename([COUNT_BAND])
    count = count.unmask(0, sameFootprint=False)
    mean = observations.select(bands).reduce(ee.Reducer.mean()).rename(bands)
    scaled = (
        mean.multiply(p["composite_scale"])
        .round()
        .clamp(-INT16_LIMIT, INT16_LIMIT)
        .toInt16()
        .updateMask(count.gt(0))
        .unmask(NODATA, sameFootprint=False)
    )
    image = scaled.addBands(count.min(INT16_LIMIT).toInt16())
    return image.set({**_tags(tile, bands, p), "N_SCENES": chosen.size()})


def _tags(tile: Tile, bands: list[str], p: dict[str, Any]) -> dict[str, Any]:
    recipe = (
        f"lakepaper gee: s2cloudless>{p['cloud_prob_threshold']}, dark NIR<{p['nir_dark_threshold']} x projection "
        f"{p['cloud_proj_dist_km']} km at {PROJECTION_SCALE_M:g} m, {'+'.join(p['cloud_morphology'])} "
        f"(erode {p['cloud_erode_m']} m, buffer {p['cloud_buffer_m']} m) at {MORPHOLOGY_SCALE_M:g} m, "
        f"SCL {p['scl_snow_class']} removed"
    )
    return {
        "SCALE": p["composite_scale"],
        "BANDS": ",".join(bands),
        "COUNT_BAND": COUNT_BAND,
        "NODATA": NODATA,
        "TILE": tile.name,
        "START_DATE": str(p["start_date"]),
        "END_DATE": str(p["end_date"]),
        "RECIPE": recipe,
    }


# --- export and download --------------------------------------------------------------------------


def export_tiles(
    tiles: Sequence[Tile],
    p: dict[str, Any],
    *,
    destination: str = "drive",
    folder: str | None = None,
    bucket: str | None = None,
    prefix: str = "",
    start: bool = False,
) -> list[ee.batch.Task]:
    """One export task per tile (tile plus margin, exact ``resolution_m`` grid, cloud-optimised GeoTIFF).

    Earth Engine writes no image properties into an exported GeoTIFF: run :func:`tag_tile` on each
    fetched file before ``local.read_composite``.

    Args:
        tiles: the tiles; p: parameters.
        destination: ``drive`` (into ``folder``) or ``gcs`` (into ``bucket``, required).
        prefix: put before each file name (``<prefix><tile>.tif``; a trailing ``/`` makes it a folder).
        start: start the tasks (default: only build them; ``task.start()`` later).

    Raises:
        ParameterError: unknown destination, missing bucket, or a bad parameter.
    """
    if destination not in ("drive", "gcs"):
        raise ParameterError("destination", f"expected 'drive' or 'gcs', got {destination!r}")
    if destination == "gcs" and not bucket:
        raise ParameterError("bucket", "a Cloud Storage export needs a bucket")
    tasks = []
    for tile in tiles:
        crs, transform, (width, height) = export_grid(tile, p)
        options = {
            "image": composite_image(tile, p),
            "description": f"lakepaper_{tile.name}",
            "fileNamePrefix": f"{prefix}{tile.name}",
            "crs": crs,
            "crsTransform": transform,
            "dimensions": f"{width}x{height}",
            "maxPixels": width * height,
            # one file per tile: the file as large as the export, rounded up to whole 256 px shards
            "shardSize": SHARD_PX,
            "fileDimensions": [SHARD_PX * math.ceil(width / SHARD_PX), SHARD_PX * math.ceil(height / SHARD_PX)],
            "fileFormat": "GeoTIFF",
            "formatOptions": {"cloudOptimized": True, "noData": NODATA},
        }
        if destination == "drive":
            task = ee.batch.Export.image.toDrive(folder=folder, **options)
        else:
            task = ee.batch.Export.image.toCloudStorage(bucket=bucket, **options)
        if start:
            task.start()
        tasks.append(task)
    return tasks


def _fetch(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` (replaced in tests)."""
    import requests

    with requests.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT_S) as response:
        if not response.ok:
            raise InputError(url, f"download failed, HTTP {response.status_code}: {response.text}")
        response.raw.decode_content = True
        with open(dest, "wb") as f:
            shutil.copyfileobj(response.raw, f)


def _download_geemap(image: ee.Image, dest: Path, crs: str, transform: list[float], size: tuple[int, int]) -> None:
    try:
        import geedim  # noqa: F401  (geemap.download_ee_image imports it only when called)
        import geemap
    except ImportError as exc:
        raise ImportError("download_tile(method='geemap') needs geemap and geedim: pip install geemap geedim") from exc
    geemap.download_ee_image(image, str(dest), crs=crs, crs_transform=transform, shape=size[::-1], dtype="int16")


def download_tile(tile: Tile, out_path: str | os.PathLike[str], p: dict[str, Any], *, method: str = "url") -> Path:
    """Compute one small tile (tile plus margin) and write it as a tagged composite GeoTIFF, atomically.

    Args:
        tile: the tile; within Earth Engine's download limits (32 MB, 10000 px a side) for ``url``.
        out_path: the GeoTIFF to write (readable by ``local.read_composite``); p: parameters.
        method: ``url`` (``ee.Image.getDownloadURL``, needs only requests) or ``geemap``
            (``geemap.download_ee_image``, which splits large requests; needs geemap and geedim).
    """
    if method not in ("url", "geemap"):
        raise ParameterError("method", f"expected 'url' or 'geemap', got {method!r}")
    image = composite_image(tile, p)
    crs, transform, size = export_grid(tile, p)
    with io.atomic_path(out_path) as tmp:
        if method == "geemap":
            _download_geemap(image, tmp, crs, transform, size)
        else:
            url = image.getDownloadURL(
                {"format": "GEO_TIFF", "crs": crs, "crs_transform": transform, "dimensions": list(size)}
            )
            _fetch(url, tmp)
        _write_tags(tmp, tile, p)
    return Path(out_path)


def _write_tags(path: Path, tile: Tile, p: dict[str, Any]) -> None:
    bands = _check_params(p)
    with rasterio.open(path, "r+") as dst:
        if dst.count != len(bands) + 1 or dst.dtypes[0] != "int16":
            raise InputError(path, f"{dst.count} {dst.dtypes[0]} bands, expected {len(bands) + 1} int16")
        dst.nodata = NODATA
        for i, name in enumerate([*bands, COUNT_BAND], start=1):
            dst.set_band_description(i, name)
        dst.update_tags(**{k: str(v) for k, v in _tags(tile, bands, p).items()})


def tag_tile(path: str | os.PathLike[str], tile: Tile, p: dict[str, Any]) -> Path:
    """Write the composite tags, band names and nodata into an exported tile, atomically (via a copy).

    Raises:
        InputError: the file does not have ``composite_bands`` + 1 int16 bands.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "exported tile not found")
    with io.atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        _write_tags(tmp, tile, p)
    return path
