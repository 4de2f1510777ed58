"""Reading Sentinel-2 from any STAC source into dask-backed xarray, as reflectance.

A source is a static catalog on disk (``catalog.json``, e.g. the world's own, which
stage 00 writes: the world's ``stac.py``) or a STAC API URL (Earth Search
``https://earth-search.aws.element84.com/v1``, Planetary Computer
``https://planetarycomputer.microsoft.com/api/stac/v1``; their assets may need signing, which
``patch_url`` does, e.g. ``planetary_computer.sign``). An area is a bounding box in a CRS or a tile
name: an MGRS tile (``14VNK``, matched against ``s2:mgrs_tile`` and ``grid:code``) or a
simulated world tile (``T07``, ``lakepaper:tile``).

:func:`find_items` selects items as the recipe does: acquired within
``start_date..end_date`` (inclusive, by UTC date) and ``eo:cloud_cover < max_scene_cloud_pct``.
:func:`load` reads the chosen bands with odc-stac onto one grid (the tile's: :func:`tile_geobox`),
lazily (dask), nearest-neighbour resampled (a 20 m band at 10 m: each pixel to 2 x 2, as the local
backend and Earth Engine do), one time step per item, and turns digital numbers into reflectance
with each item's own metadata: ``DN x scale + offset`` from the asset's ``raster:bands``, so that
the processing-baseline offset (-0.1 from 04.00, 2022-01-25) is undone per scene; no data
(``raster:bands`` nodata, else 0) becomes NaN.

Where the metadata differ between providers:

* Planetary Computer items have no ``raster:bands``: scale 0.0001, and offset -0.1 when
  ``s2:processing_baseline`` >= 04.00, else 0 (its documented harmonisation);
* Earth Search ``earthsearch:boa_offset_applied: true`` means its COGs were already shifted back,
  whatever ``raster:bands`` says (Element84/earth-search#9, #66): offset 0.

Band names may be given as Earth Search keys (``blue``), Planetary Computer keys / band ids
(``B02``) or the world's names (``B2``); each is looked up among the item's assets under any of
these names. Categorical assets (``scl``, ``s2cloudless``) keep their integer DNs (0 / 255 no data).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr
from pyproj import Transformer
from shapely.geometry import box, shape

from lakepaper.errors import InputError, ParameterError

#: Band id -> Earth Search v1 key (Planetary Computer uses the band id itself).
ES_KEYS: dict[str, str] = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}
#: Assets whose DNs are classes or percentages, kept as integers.
CATEGORICAL = ("scl", "s2cloudless")
#: Reflectance scale when an item declares none (ESA's QUANTIFICATION_VALUE 10000).
DEFAULT_SCALE = 1e-4
#: Offset of baseline 04.00 and later products when an item declares none (-1000 DN).
BASELINE_OFFSET = -0.1


@dataclass(frozen=True)
class Area:
    """Where to read: ``bbox`` (minx, miny, maxx, maxy) in ``crs``, or a ``tile`` name.

    Example:
        >>> Area(bbox=(403820, 6258900, 411500, 6266580), crs="EPSG:32614")  # doctest: +SKIP
        >>> Area(tile="14VNK")  # doctest: +SKIP
    """

    bbox: tuple[float, float, float, float] | None = None
    crs: str | int | None = "EPSG:4326"
    tile: str | None = None

    def __post_init__(self) -> None:
        if (self.bbox is None) == (self.tile is None):
            raise ParameterError("area", "give either a bbox (with its crs) or a tile name")
        if self.bbox is not None and (
            len(self.bbox) != 4 or not (self.bbox[0] < self.bbox[2] and self.bbox[1] < self.bbox[3])
        ):
            raise ParameterError("area", f"bbox {self.bbox} is not (minx, miny, maxx, maxy)")

    def bbox_4326(self) -> tuple[float, float, float, float] | None:
        if self.bbox is None:
            return None
        to_ll = Transformer.from_crs(self.crs, 4326, always_xy=True)
        return tuple(to_ll.transform_bounds(*self.bbox, densify_pts=21))


def _normalise_band(name: str) -> str:
    """``B2`` -> ``B02``; other names unchanged."""
    if len(name) == 2 and name[0] == "B" and name[1].isdigit():
        return f"B0{name[1]}"
    return name


def asset_key(item: pystac.Item, name: str) -> str:
    """The key under which ``item`` holds band ``name`` (Earth Search key, band id or world name).

    Raises:
        InputError: the item has no such asset.
    """
    name_n = _normalise_band(name)
    by_key = {v: k for k, v in ES_KEYS.items()}
    candidates = [name, name_n, ES_KEYS.get(name_n, ""), by_key.get(name, ""), name.lower(), name.upper()]
    for key in candidates:
        if key and key in item.assets:
            return key
    raise InputError(item.get_self_href() or item.id, f"no asset for band {name!r} (assets: {sorted(item.assets)})")


def band_scaling(item: pystac.Item, key: str) -> tuple[float, float, float | None]:
    """(scale, offset, nodata) of asset ``key`` of ``item`` (see the module docstring for the rules)."""
    asset = item.assets[key]
    rb = (asset.extra_fields.get("raster:bands") or [{}])[0]
    nodata = rb.get("nodata", 255 if key == "s2cloudless" else 0)
    if key.lower() in CATEGORICAL:
        return 1.0, 0.0, nodata
    props = item.properties
    scale = float(rb.get("scale", DEFAULT_SCALE))
    if "offset" in rb:
        offset = float(rb["offset"])
    else:
        try:
            baseline = float(props.get("s2:processing_baseline", 0.0))
        except (TypeError, ValueError):
            baseline = 0.0
        offset = BASELINE_OFFSET if baseline >= 4.0 else 0.0
    if props.get("earthsearch:boa_offset_applied") is True:
        offset = 0.0
    return scale, offset, nodata


def _is_api(source: str) -> bool:
    return source.startswith(("http://", "https://")) and not source.endswith(".json")


def _tile_matches(item: pystac.Item, tile: str) -> bool:
    p = item.properties
    t = tile.upper().removeprefix("MGRS-")
    t = t[1:] if len(t) == 6 and t[0] == "T" and t[1:3].isdigit() else t  # T14VNK -> 14VNK
    return (
        str(p.get("s2:mgrs_tile", "")).upper() == t
        or str(p.get("grid:code", "")).upper() == f"MGRS-{t}"
        or str(p.get("lakepaper:tile", "")) == tile
    )


def _keep(item: pystac.Item, area: Area, start: dt.date, end: dt.date, max_cloud: float, box4326) -> bool:
    when = item.datetime or pystac.utils.str_to_datetime(item.properties["start_datetime"])
    day = when.astimezone(dt.UTC).date() if when.tzinfo else when.date()
    if not start <= day <= end:
        return False
    cloud = item.properties.get("eo:cloud_cover")
    if cloud is None or not float(cloud) < max_cloud:
        return False
    if area.tile is not None:
        return _tile_matches(item, area.tile)
    geom = shape(item.geometry) if item.geometry else box(*item.bbox)
    return geom.intersects(box(*box4326))


def find_items(
    source: str | os.PathLike[str],
    area: Area,
    *,
    start_date: str,
    end_date: str,
    max_scene_cloud_pct: float,
    collection: str = "sentinel-2-l2a",
) -> list[pystac.Item]:
    """The items of ``collection`` over ``area`` in the date range below the cloud limit, by (time, id).

    Raises:
        InputError: the source cannot be opened or has no such collection.
        ParameterError: bad dates or cloud limit.
    """
    try:
        start, end = dt.date.fromisoformat(str(start_date)), dt.date.fromisoformat(str(end_date))
    except ValueError as exc:
        raise ParameterError("start_date", f"expected ISO dates, got {start_date!r}..{end_date!r}") from exc
    if end < start:
        raise ParameterError("end_date", f"{end} is before start_date {start}")
    max_cloud = float(max_scene_cloud_pct)
    box4326 = area.bbox_4326()
    src = str(source)
    if _is_api(src):
        candidates = _search_api(src, area, collection, start, end, max_cloud, box4326)
    else:
        candidates = _walk_static(src, collection)
    items = [it for it in candidates if _keep(it, area, start, end, max_cloud, box4326)]
    return sorted(items, key=lambda it: (it.datetime, it.id))


def _walk_static(src: str, collection: str) -> list[pystac.Item]:
    path = Path(src)
    href = str(path / "catalog.json") if path.is_dir() else src
    try:
        root = pystac.read_file(href)
    except (OSError, ValueError, pystac.STACError) as exc:
        raise InputError(href, f"not a readable STAC catalog ({exc})") from exc
    if isinstance(root, pystac.Collection) and root.id == collection:
        return list(root.get_items(recursive=True))
    if not isinstance(root, pystac.Catalog):
        raise InputError(href, f"a STAC {type(root).__name__}, not a catalog or collection")
    child = root.get_child(collection, recursive=True)
    if child is None:
        have = [c.id for c in root.get_children()]
        raise InputError(href, f"no collection {collection!r} in the catalog (it has {have})")
    return list(child.get_items(recursive=True))


def _search_api(src, area, collection, start, end, max_cloud, box4326) -> list[pystac.Item]:
    import pystac_client
    from pystac_client.exceptions import APIError

    try:
        client = pystac_client.Client.open(src)
    except (APIError, OSError, ValueError) as exc:
        raise InputError(src, f"not a reachable STAC API ({exc})") from exc
    common = {
        "collections": [collection],
        "datetime": f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z",
    }
    query = {"eo:cloud_cover": {"lt": max_cloud}}
    if area.tile is None:
        return list(client.search(bbox=box4326, query=query, **common).items())
    t = area.tile.upper().removeprefix("MGRS-")
    for prop, value in (("s2:mgrs_tile", t), ("grid:code", f"MGRS-{t}")):  # Planetary Computer, Earth Search
        found = list(client.search(query={**query, prop: {"eq": value}}, **common).items())
        if found:
            return found
    return []


def tile_geobox(items: Sequence[pystac.Item], area: Area, resolution: float = 10.0):
    """The grid to load onto (an ``odc.geo.geobox.GeoBox``).

    A bbox area: the bbox in its CRS at ``resolution``, its edges snapped out to multiples of
    ``resolution`` (which keeps a 10, 20 or 60 m grid on Sentinel-2's own pixel edges). A tile
    area: the items' own extent (``proj:transform``/``proj:shape`` of their finest asset; all items
    must share it) from its exact corner, at ``resolution``.

    Raises:
        InputError: no item, or the tile's items on different CRS or grids.
    """
    from odc.geo.geobox import GeoBox

    if area.bbox is not None:
        return GeoBox.from_bbox(area.bbox, crs=area.crs, resolution=resolution)
    if not items:
        raise InputError(area.tile, "no item of this tile in the source: nothing to grid on")
    grids = {_item_grid(it, resolution) for it in items}
    if len(grids) != 1:
        raise InputError(area.tile, f"the tile's items lie on {len(grids)} different grids; give a bbox instead")
    crs, bounds = grids.pop()
    return GeoBox.from_bbox(bounds, crs=crs, resolution=resolution, tight=True)  # the items' corner, not snapped


def _item_grid(item: pystac.Item, resolution: float) -> tuple[str, tuple[float, float, float, float]]:
    p = item.properties
    crs = p.get("proj:code") or (f"EPSG:{p['proj:epsg']}" if p.get("proj:epsg") else None)
    if crs is None:
        raise InputError(item.id, "no proj:code / proj:epsg: the item's grid is unknown")
    best = None
    for asset in item.assets.values():
        tr, sh = asset.extra_fields.get("proj:transform"), asset.extra_fields.get("proj:shape")
        if tr and sh and (best is None or abs(tr[0]) < abs(best[0][0])):
            best = (tr, sh)
    if best is None:
        raise InputError(item.id, "no asset with proj:transform and proj:shape")
    (a, _, c, _, e, f), (rows, cols) = best[0][:6], best[1]
    left, top = c, f
    return crs, (left, top + e * rows, left + a * cols, top)


def load(
    items: Sequence[pystac.Item],
    bands: Sequence[str],
    geobox,
    *,
    chunks: int = 2048,
    resampling: str = "nearest",
    patch_url: Callable[[str], str] | None = None,
) -> xr.Dataset:
    """Bands of ``items`` on ``geobox`` as a lazy dataset: reflectance float32 (NaN no data), one step per item.

    Variables are named as ``bands`` were given; categorical ones (``scl``, ``s2cloudless``) keep
    their integer DNs. Along ``time``, coordinates ``id``, ``sun_azimuth`` (``view:sun_azimuth``,
    else ``s2:mean_solar_azimuth``), ``cloud_cover`` and ``processing_baseline``.

    Raises:
        InputError: no item, or an item lacks a band.
    """
    import odc.stac

    if not items:
        raise InputError("items", "no STAC item to load")
    items = sorted(items, key=lambda it: (it.datetime, it.id))
    keys = [asset_key(items[0], b) for b in bands]
    for it in items[1:]:
        for b, k in zip(bands, keys, strict=True):
            if asset_key(it, b) != k:
                raise InputError(it.id, f"band {b!r} is asset {asset_key(it, b)!r} here, {k!r} in {items[0].id}")
    kw: dict[str, Any] = {"patch_url": patch_url} if patch_url else {}
    raw = odc.stac.load(
        items,
        bands=keys,
        geobox=geobox,
        groupby="id",
        resampling=resampling,
        chunks={"x": chunks, "y": chunks},
        preserve_original_order=True,
        **kw,
    )
    if raw.sizes["time"] != len(items):
        raise InputError("items", f"odc-stac returned {raw.sizes['time']} time steps for {len(items)} items")
    want = np.array([np.datetime64(it.datetime.replace(tzinfo=None)) for it in items], dtype=raw.time.dtype)
    if not np.array_equal(raw.time.values, want):
        raise InputError("items", "odc-stac returned the items in another order")
    out = {}
    for b, k in zip(bands, keys, strict=True):
        scaling = [band_scaling(it, k) for it in items]
        da = raw[k]
        if k.lower() in CATEGORICAL:
            out[b] = da
            continue
        scale = xr.DataArray(np.array([s for s, _, _ in scaling], np.float32), dims="time")
        offset = xr.DataArray(np.array([o for _, o, _ in scaling], np.float32), dims="time")
        nodata = xr.DataArray(np.array([-1 if n is None else n for _, _, n in scaling], np.float64), dims="time")
        refl = da.astype(np.float32) * scale + offset
        out[b] = refl.where(da != nodata).astype(np.float32)
        out[b].attrs = {"units": "reflectance", "asset": k}
    ds = xr.Dataset(out)

    def prop(it: pystac.Item, *names: str) -> Any:
        for n in names:
            if it.properties.get(n) is not None:
                return it.properties[n]
        return np.nan

    return ds.assign_coords(
        id=("time", [it.id for it in items]),
        sun_azimuth=("time", [float(prop(it, "view:sun_azimuth", "s2:mean_solar_azimuth")) for it in items]),
        cloud_cover=("time", [float(prop(it, "eo:cloud_cover")) for it in items]),
        processing_baseline=("time", [str(prop(it, "s2:processing_baseline")) for it in items]),
    )


def read(
    source: str | os.PathLike[str],
    area: Area,
    bands: Sequence[str],
    *,
    start_date: str,
    end_date: str,
    max_scene_cloud_pct: float,
    collection: str = "sentinel-2-l2a",
    resolution: float = 10.0,
    chunks: int = 2048,
    patch_url: Callable[[str], str] | None = None,
) -> xr.Dataset:
    """:func:`find_items`, :func:`tile_geobox` and :func:`load` in one call.

    Raises:
        ParameterError: bad dates; InputError: unreadable source, or no item over the area and dates.
    """
    items = find_items(
        source,
        area,
        start_date=start_date,
        end_date=end_date,
        max_scene_cloud_pct=max_scene_cloud_pct,
        collection=collection,
    )
    if not items:
        raise InputError(
            str(source), f"no {collection} item over {area} between {start_date} and {end_date} under the cloud limit"
        )
    return load(items, bands, tile_geobox(items, area, resolution), chunks=chunks, patch_url=patch_url)
