"""The simulated world as a static STAC catalog, in the layout of the public Sentinel-2 collections.

The world stores its imagery only here (``build/<profile>/00_world/stac``), as what a researcher
with real data queries: a static catalog (pystac, self-contained, relative links) with two
collections laid out like Element 84's Earth Search v1 ``sentinel-2-l2a`` and ``sentinel-2-l1c``,
one Cloud-Optimized GeoTIFF per band and asset, so that the compositing stage reads the demo
through the same door as Earth Search or Planetary Computer. The generator writes each scene's
COGs in its worker (:func:`write_scene_assets`) and the catalog at the end (:func:`finish_catalog`).

Layout of the catalog folder::

    catalog.json
    sentinel-2-l2a/collection.json
    sentinel-2-l2a/<item id>/<item id>.json       e.g. S2A_14VNK_20170605_0_L2A
    sentinel-2-l2a/<item id>/B02.tif ...           one COG per asset: B02 B03 B04 B08 (10 m), B11, SCL (20 m),
                                                   s2cloudless.tif (the world's probability, see below)
    sentinel-2-l1c/collection.json
    sentinel-2-l1c/<item id>/<item id>.json       e.g. S2A_14VNK_20170605_0_L1C
    sentinel-2-l1c/<item id>/B01.tif ... B12.tif   13 bands at the world's cloud grid (80 m)

Asset keys (Earth Search v1 is the primary layout; Planetary Computer ``sentinel-2-l2a`` names the
same files by band, :data:`PC_KEYS` maps them)::

    Earth Search   coastal blue green red rededge1 rededge2 rededge3 nir nir08 nir09 cirrus swir16 swir22 scl
    band / PC      B01     B02  B03   B04 B05      B06      B07      B08 B8A   B09   B10    B11    B12    SCL

Item fields, as the public items carry them: ``datetime``, ``platform`` (``sentinel-2a``),
``constellation``, ``instruments``; ``eo:cloud_cover`` (the scene's ``CLOUDY_PIXEL_PERCENTAGE``);
``view:sun_azimuth`` and ``view:sun_elevation`` (90 - mean solar zenith); ``proj:epsg`` and
``proj:code`` in the properties, ``proj:shape`` and ``proj:transform`` per asset (10, 20 and 80 m
assets differ); ``mgrs:utm_zone``, ``mgrs:latitude_band``, ``mgrs:grid_square`` and ``grid:code``
(Earth Search) and ``s2:mgrs_tile`` (Planetary Computer): the real MGRS 100 km square of the
tile's centre; ``s2:processing_baseline``, ``s2:product_type``, ``s2:product_uri``,
``s2:mean_solar_zenith``/``s2:mean_solar_azimuth`` and Sen2Cor's class percentages from the SCL
(``s2:water_percentage`` ...); ``earthsearch:boa_offset_applied`` (always false: the DNs carry the
offset that ``raster:bands`` declares). ``lakepaper:tile`` and ``lakepaper:system_index`` name
the world's tile and the scene's Earth Engine ``system:index``, to join truth to items.

Radiometry. Each reflectance asset has ``raster:bands`` ``[{nodata: 0, data_type: uint16,
bits_per_sample: 15, spatial_resolution, scale: 0.0001, offset}]``. ESA's processing baseline
04.00 (products from 2022-01-25 on) adds ``BOA_ADD_OFFSET`` (L2A) / ``RADIO_ADD_OFFSET`` (L1C) =
-1000 to the DNs: a scene from 2022-01-25 on is stored as reflectance x 10000 + 1000 (0 stays no
data) with ``offset: -0.1``; earlier scenes as reflectance x 10000 with ``offset: 0``. A reader
that applies ``DN x scale + offset`` gets the world's reflectance back either way
(:mod:`lakepaper.composite.stac`). SCL is uint8, no scale, nodata 0.

Not in the public collections: ``s2cloudless`` (uint8 0..100, nodata 255) on the L2A items is
the world's own cloud probability, as Earth Engine's ``COPERNICUS/S2_CLOUD_PROBABILITY`` holds it.
A reader of real catalogs computes it from the L1C assets; this asset lets the demo check that
computation. The per-scene truth flags are not written (truth is not imagery).

The processing baseline of a date (:func:`processing_baseline`) follows ESA's history in steps;
only the 04.00 date changes the radiometry.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pystac
import rasterio
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping, shape

from lakepaper.errors import InputError
from lakepaper.world.spectra import S2_BANDS

L2A_COLLECTION, L1C_COLLECTION = "sentinel-2-l2a", "sentinel-2-l1c"
#: The date from which ESA's products carry the -1000 DN offset (processing baseline 04.00).
OFFSET_FROM = dt.date(2022, 1, 25)
#: BOA_ADD_OFFSET (L2A) and RADIO_ADD_OFFSET (L1C) from baseline 04.00, in DN.
ADD_OFFSET_DN = -1000
#: DN per unit reflectance (ESA's QUANTIFICATION_VALUE).
QUANTIFICATION = 10000
#: ESA processing baselines by start date (steps of the history; only 04.00 changes the radiometry).
BASELINES: tuple[tuple[dt.date, str], ...] = (
    (dt.date(2015, 6, 23), "02.04"),
    (dt.date(2018, 11, 6), "02.07"),
    (dt.date(2020, 1, 28), "02.14"),
    (dt.date(2021, 6, 30), "03.00"),
    (OFFSET_FROM, "04.00"),
    (dt.date(2022, 12, 6), "05.09"),
    (dt.date(2023, 12, 13), "05.10"),
)

#: Band id -> (Earth Search key, common name, description, centre wavelength um, FWHM um).
BANDS: dict[str, tuple[str, str, str, float, float]] = {
    "B01": ("coastal", "coastal", "Coastal aerosol (band 1)", 0.443, 0.027),
    "B02": ("blue", "blue", "Blue (band 2)", 0.490, 0.098),
    "B03": ("green", "green", "Green (band 3)", 0.560, 0.045),
    "B04": ("red", "red", "Red (band 4)", 0.665, 0.038),
    "B05": ("rededge1", "rededge", "Red edge 1 (band 5)", 0.704, 0.019),
    "B06": ("rededge2", "rededge", "Red edge 2 (band 6)", 0.740, 0.018),
    "B07": ("rededge3", "rededge", "Red edge 3 (band 7)", 0.783, 0.028),
    "B08": ("nir", "nir", "NIR 1 (band 8)", 0.842, 0.145),
    "B8A": ("nir08", "nir08", "NIR 2 (band 8A)", 0.865, 0.033),
    "B09": ("nir09", "nir09", "NIR 3 (band 9)", 0.945, 0.026),
    "B10": ("cirrus", "cirrus", "SWIR - Cirrus (band 10)", 1.375, 0.075),
    "B11": ("swir16", "swir16", "SWIR 1 (band 11)", 1.610, 0.143),
    "B12": ("swir22", "swir22", "SWIR 2 (band 12)", 2.190, 0.242),
}
#: Earth Search v1 asset key -> Planetary Computer asset key (the band id); SCL included.
PC_KEYS: dict[str, str] = {v[0]: k for k, v in BANDS.items()} | {"scl": "SCL"}
#: The world's L2A file band names (B2 ...) -> band id.
_WORLD_L2A = {"B2": "B02", "B3": "B03", "B4": "B04", "B8": "B08", "B11": "B11"}
#: Sen2Cor SCL classes -> the percentage properties of the public items.
SCL_PERCENTAGES = {
    2: "s2:dark_features_percentage",
    3: "s2:cloud_shadow_percentage",
    4: "s2:vegetation_percentage",
    5: "s2:not_vegetated_percentage",
    6: "s2:water_percentage",
    7: "s2:unclassified_percentage",
    8: "s2:medium_proba_clouds_percentage",
    9: "s2:high_proba_clouds_percentage",
    10: "s2:thin_cirrus_percentage",
    11: "s2:snow_ice_percentage",
}
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
]
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
#: COG creation options (GDAL's COG driver): deflate with the integer predictor, 512 px blocks.
COG_OPTIONS = {"driver": "COG", "compress": "DEFLATE", "predictor": 2, "blocksize": 512, "level": 6}


def processing_baseline(date: dt.date) -> str:
    """ESA processing baseline of a product sensed on ``date`` (the step it falls in)."""
    current = BASELINES[0][1]
    for start, name in BASELINES:
        if date >= start:
            current = name
    return current


def has_offset(baseline: str) -> bool:
    """True when a baseline's DNs carry BOA_ADD_OFFSET / RADIO_ADD_OFFSET (04.00 and later)."""
    return float(baseline) >= 4.0


def mgrs_square(epsg: int, easting: float, northing: float, lat: float) -> tuple[int, str, str]:
    """(UTM zone, latitude band, 100 km square) of a UTM point, as the MGRS grid names it."""
    if not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        raise InputError(f"EPSG:{epsg}", "not a WGS 84 / UTM zone: no MGRS tile")
    zone = epsg % 100
    band = "CDEFGHJKLMNPQRSTUVWXX"[min(max(int((lat + 80) // 8), 0), 20)]
    columns = ("STUVWXYZ", "ABCDEFGH", "JKLMNPQR")[zone % 3]
    col = columns[int(easting // 100000) - 1]
    rows = "ABCDEFGHJKLMNPQRSTUV"
    row = rows[(int(northing // 100000) + (5 if zone % 2 == 0 else 0)) % 20]
    return zone, band, col + row


def write_scene_assets(
    folder: str | os.PathLike[str], scene: Any, *, crs: Any, t10: Any, t20: Any, tc: Any, date: dt.date
) -> dict:
    """Write one scene's COGs into ``folder/l2a`` and ``folder/l1c``, as a product of ``date`` stores them.

    ``scene`` is a :class:`lakepaper.world.scenes.Scene` (its arrays in reflectance x 10000, 0 no
    data); ``t10``, ``t20`` and ``tc`` are the transforms of its 10 m, 20 m and L1C grids. The DNs
    carry the -1000 offset from processing baseline 04.00 on (:func:`has_offset`). The world's
    generator calls this for every scene (in its worker processes); :func:`finish_catalog` then
    moves the folders under their item ids and writes the catalog.

    Returns:
        Per level, asset key -> file name, band and grid; and the item's SCL class percentages.
    """
    offset = has_offset(processing_baseline(date))
    root = Path(folder)
    d2, d1 = root / "l2a", root / "l1c"
    d2.mkdir(parents=True, exist_ok=True)
    d1.mkdir(parents=True, exist_ok=True)
    p10, p20, pc = ({"crs": crs, "transform": t} for t in (t10, t20, tc))
    l2a: dict[str, dict] = {}
    for i, name in enumerate(("B2", "B3", "B4", "B8")):
        bid = _WORLD_L2A[name]
        l2a[BANDS[bid][0]] = {
            "file": f"{bid}.tif",
            "band": bid,
            **_cog(d2 / f"{bid}.tif", _dn(scene.l2a_10m[i], offset), p10, "uint16", 0),
        }
    l2a["swir16"] = {
        "file": "B11.tif",
        "band": "B11",
        **_cog(d2 / "B11.tif", _dn(scene.l2a_20m[0], offset), p20, "uint16", 0),
    }
    scl = scene.l2a_20m[1].astype(np.uint8)
    l2a["scl"] = {"file": "SCL.tif", "band": "SCL", **_cog(d2 / "SCL.tif", scl, p20, "uint8", 0)}
    l2a["s2cloudless"] = {
        "file": "s2cloudless.tif",
        "band": None,
        **_cog(d2 / "s2cloudless.tif", scene.cloud_prob, p10, "uint8", 255),
    }
    l1c = {}
    for i, bid in enumerate(S2_BANDS):
        l1c[BANDS[bid][0]] = {
            "file": f"{bid}.tif",
            "band": bid,
            **_cog(d1 / f"{bid}.tif", _dn(scene.l1c[i], offset), pc, "uint16", 0),
        }
    valid = scl != 0
    n_valid = max(int(valid.sum()), 1)
    pct = {name: round(100.0 * float((scl == k).sum()) / n_valid, 6) for k, name in SCL_PERCENTAGES.items()}
    pct["s2:nodata_pixel_percentage"] = round(100.0 * float((~valid).mean()), 6)
    return {"l2a": l2a, "l1c": l1c, "percentages": pct}


def finish_catalog(out_dir: str | os.PathLike[str], scenes, tile_recs: dict, written: dict) -> pd.DataFrame:
    """Move each scene's asset folders under its item ids and write the static catalog in ``out_dir``.

    Args:
        out_dir: the catalog folder (``<world>/stac``); the scenes' assets are in
            ``out_dir/.scenes/<tile>/<system_index>/{l2a,l1c}`` (:func:`write_scene_assets`).
        scenes: the world's scene table (tile, system_index, date, SPACECRAFT_NAME, cloud and sun angles).
        tile_recs: tile name -> record (bounds, epsg) as ``world.json`` holds them.
        written: (tile, system_index) -> what :func:`write_scene_assets` returned.

    Returns:
        ``scenes`` with the columns ``l2a_item`` and ``l1c_item`` (the item ids) added.
    """
    out = Path(out_dir)
    staged = out / ".scenes"
    jobs = _plan(scenes, tile_recs)
    metas = []
    for job in jobs:
        w = written[(job["tile"], job["system_index"])]
        d2, d1 = out / L2A_COLLECTION / job["l2a_id"], out / L1C_COLLECTION / job["l1c_id"]
        for src, dst in (
            (staged / job["tile"] / job["system_index"] / "l2a", d2),
            (staged / job["tile"] / job["system_index"] / "l1c", d1),
        ):
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(src, dst)
        metas.append({**w, "dirs": (d2, d1)})
    shutil.rmtree(staged, ignore_errors=True)
    catalog = _build_catalog(jobs, metas, tile_recs)
    catalog.normalize_hrefs(str(out) + os.sep)
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    ids = pd.DataFrame(
        [
            {"tile": j["tile"], "system_index": j["system_index"], "l2a_item": j["l2a_id"], "l1c_item": j["l1c_id"]}
            for j in jobs
        ]
    )
    return scenes.merge(ids, on=["tile", "system_index"], how="left", validate="one_to_one")


def _plan(scenes, tile_recs: dict) -> list[dict]:
    """One job per scene: ids, dates, MGRS names, metadata."""
    jobs, seen = [], set()
    for s in scenes.sort_values(["tile", "date", "system_index"]).itertuples():
        rec = tile_recs[s.tile]
        left, bottom, right, top = rec["bounds"]
        epsg = int(rec["epsg"])
        cx, cy = (left + right) / 2, (bottom + top) / 2
        lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(cx, cy)
        zone, band, square = mgrs_square(epsg, cx, cy, lat)
        mgrs = f"{zone:02d}{band}{square}"
        date = pd.Timestamp(s.date).date()
        sensed = dt.datetime.strptime(s.system_index[:15], "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
        sat = "S2A" if str(s.SPACECRAFT_NAME).endswith("A") else "S2B"
        seq = 0
        while (sat, mgrs, date, seq) in seen:  # two world tiles in one MGRS square on one day
            seq += 1
        seen.add((sat, mgrs, date, seq))
        stem = f"{sat}_{mgrs}_{date:%Y%m%d}_{seq}"
        jobs.append(
            {
                "tile": s.tile,
                "system_index": s.system_index,
                "date": date,
                "datetime": sensed,
                "sat": sat,
                "mgrs": (zone, band, square),
                "mgrs_tile": mgrs,
                "l2a_id": f"{stem}_L2A",
                "l1c_id": f"{stem}_L1C",
                "baseline": processing_baseline(date),
                "cloud": float(s.CLOUDY_PIXEL_PERCENTAGE),
                "zenith": float(s.MEAN_SOLAR_ZENITH_ANGLE),
                "azimuth": float(s.MEAN_SOLAR_AZIMUTH_ANGLE),
                "epsg": epsg,
                "bounds": (left, bottom, right, top),
            }
        )
    return jobs


def _cog(path: Path, arr: np.ndarray, profile: Any, dtype: str, nodata: int) -> dict:
    """Write one band as a COG; its projection and raster fields."""
    kw = {"blocksize": next(b for b in (512, 256, 128) if min(arr.shape) >= b or b == 128)}  # GDAL: >= 128
    with rasterio.open(
        path,
        "w",
        **{**COG_OPTIONS, **kw},
        count=1,
        height=arr.shape[0],
        width=arr.shape[1],
        dtype=dtype,
        crs=profile["crs"],
        transform=profile["transform"],
        nodata=nodata,
    ) as dst:
        dst.write(arr.astype(dtype), 1)
    t = profile["transform"]
    return {"shape": [int(arr.shape[0]), int(arr.shape[1])], "transform": [t.a, t.b, t.c, t.d, t.e, t.f], "res": t.a}


def _dn(arr: np.ndarray, offset: bool) -> np.ndarray:
    """The world's DNs (reflectance x 10000, 0 no data) as a product of the date's baseline stores them."""
    if not offset:
        return arr
    shifted = np.minimum(arr.astype(np.int32) - ADD_OFFSET_DN, 65535).astype(np.uint16)
    return np.where(arr == 0, 0, shifted).astype(np.uint16)


def _footprint(epsg: int, bounds: tuple[float, float, float, float]) -> dict:
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True).transform
    poly = box(*bounds).segmentize(max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / 8)
    return mapping(shapely.transform(poly, lambda xy: np.column_stack(to_ll(xy[:, 0], xy[:, 1]))))


def _properties(job: dict, level: str) -> dict:
    zone, band, square = job["mgrs"]
    sensed = job["datetime"]
    base = job["baseline"].replace(".", "")
    product = f"{job['sat']}_MSI{level}_{sensed:%Y%m%dT%H%M%S}_N{base}_R000_T{job['mgrs_tile']}_{sensed:%Y%m%dT%H%M%S}"
    return {
        "platform": f"sentinel-2{job['sat'][-1].lower()}",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": job["cloud"],
        "view:sun_azimuth": job["azimuth"],
        "view:sun_elevation": round(90.0 - job["zenith"], 4),
        "proj:epsg": job["epsg"],
        "proj:code": f"EPSG:{job['epsg']}",
        "mgrs:utm_zone": zone,
        "mgrs:latitude_band": band,
        "mgrs:grid_square": square,
        "grid:code": f"MGRS-{job['mgrs_tile']}",
        "s2:mgrs_tile": job["mgrs_tile"],
        "s2:processing_baseline": job["baseline"],
        "s2:product_type": f"S2MSI{level[1:]}",
        "s2:product_uri": f"{product}.SAFE",
        "s2:mean_solar_zenith": job["zenith"],
        "s2:mean_solar_azimuth": job["azimuth"],
        "earthsearch:boa_offset_applied": False,
        "lakepaper:tile": job["tile"],
        "lakepaper:system_index": job["system_index"],
    }


def _asset(key: str, meta: dict, offset: bool) -> pystac.Asset:
    res = meta["res"]
    fields: dict[str, Any] = {
        "gsd": res,
        "proj:shape": meta["shape"],
        "proj:transform": meta["transform"],
    }
    if key == "scl":
        title, roles = f"Scene classification map (SCL) - {res:g}m", ["data", "reflectance"]
        fields["raster:bands"] = [{"nodata": 0, "data_type": "uint8", "spatial_resolution": res, "unit": "class"}]
    elif key == "s2cloudless":
        title, roles = (
            "s2cloudless cloud probability 0..100 (as Earth Engine S2_CLOUD_PROBABILITY; not public)",
            [
                "data",
                "cloud",
            ],
        )
        fields["raster:bands"] = [{"nodata": 255, "data_type": "uint8", "spatial_resolution": res, "unit": "percent"}]
    else:
        bid = meta["band"]
        _, common, desc, centre, fwhm = BANDS[bid]
        title, roles = f"{desc} - {res:g}m", ["data", "reflectance"]
        fields["eo:bands"] = [
            {
                "name": key,
                "common_name": common,
                "description": desc,
                "center_wavelength": centre,
                "full_width_half_max": fwhm,
            }
        ]
        fields["raster:bands"] = [
            {
                "nodata": 0,
                "data_type": "uint16",
                "bits_per_sample": 15,
                "spatial_resolution": res,
                "scale": 1.0 / QUANTIFICATION,
                "offset": ADD_OFFSET_DN / QUANTIFICATION if offset else 0.0,
            }
        ]
    return pystac.Asset(href=meta["file"], media_type=COG_TYPE, title=title, roles=roles, extra_fields=fields)


def _build_catalog(jobs: list[dict], written: list[dict], tile_recs: dict) -> pystac.Catalog:
    catalog = pystac.Catalog(
        id="lakepaper-world",
        description="The lakepaper simulated world as Sentinel-2 collections laid out like Earth Search v1 "
        "(sentinel-2-l2a, sentinel-2-l1c). Simulated imagery, not Copernicus data.",
        title="lakepaper simulated Sentinel-2",
    )
    collections = {}
    for cid, level in ((L2A_COLLECTION, "L2A"), (L1C_COLLECTION, "L1C")):
        coll = pystac.Collection(
            id=cid,
            description=f"Simulated Sentinel-2 {level} in the layout of Earth Search v1 {cid}: one COG per band, "
            "raster:bands scale 0.0001 and offset -0.1 from processing baseline 04.00 (2022-01-25).",
            extent=pystac.Extent(
                pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]), pystac.TemporalExtent([[None, None]])
            ),
            title=f"lakepaper simulated Sentinel-2 {level}",
            license="MIT",
            stac_extensions=list(EXTENSIONS),
        )
        collections[level] = coll
        catalog.add_child(coll)
    for job, w in zip(jobs, written, strict=True):
        offset = has_offset(job["baseline"])
        geom = _footprint(job["epsg"], job["bounds"])
        bbox = list(shape(geom).bounds)
        items = {}
        for level, key, item_id in (("L2A", "l2a", job["l2a_id"]), ("L1C", "l1c", job["l1c_id"])):
            props = _properties(job, level)
            if level == "L2A":
                props.update(w["percentages"])
            item = pystac.Item(
                id=item_id,
                geometry=geom,
                bbox=bbox,
                datetime=job["datetime"],
                properties=props,
                stac_extensions=list(EXTENSIONS),
                collection=collections[level].id,
            )
            for akey, meta in w[key].items():
                meta = dict(meta, file=str((w["dirs"][0 if level == "L2A" else 1]) / meta["file"]))
                item.add_asset(akey, _asset(akey, meta, offset))
            collections[level].add_item(item)
            items[level] = item
        items["L2A"].add_link(pystac.Link("derived_from", items["L1C"], media_type=pystac.MediaType.JSON))
    for coll in collections.values():
        coll.update_extent_from_items()
    return catalog
