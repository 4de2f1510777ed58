"""Explore a build on a map: ``notebooks/explore.ipynb`` and the map of the paper page.

Two halves.

The data, with no widget library: :class:`Build` finds a profile's files (stage 01's composites and tile
grid, stage 04's probability and raw mask, stage 05's product and river cases, the GLAKES and PLD files
stage 05 read, stage 00's truth); :func:`render` draws one raster of a tile as an image warped to Web
Mercator, placed by its lon/lat bounds; :func:`lake_records` gives every lake of the product what the
inspector shows: area, source (prediction, GLAKES, PLD, manual), the rules that touched it and why, and on
the simulated world the truth lake under it.

The map, in JupyterLab: :func:`explore` builds a geemap ``Map`` without initialising Earth Engine, with a
tile's composite as true colour and NDWI, the model's probability and raw mask, the product, the GLAKES and
PLD catalogues and the truth, styled as Figs. 7-9 (:data:`STYLES`); a layer control, a split view
(composite | probability) and a click inspector. :func:`add_gee_composite` adds, where Earth Engine
credentials exist, stage 01's recipe computed server-side (:func:`lakepaper.composite.gee.composite_image`)
around the map's centre.

Why rendered images rather than a tile server: geemap shows local rasters through ``localtileserver``, a
web server started inside the kernel, which the browser must reach; it needs a package that is not
installed here (and its rio-tiler, Flask and uvicorn stack), jupyter-server-proxy on a remote JupyterLab,
and it cannot be checked without a browser. A tile of the simulated profiles is 256-768 px, and a real
Sentinel-2 tile (10,980 px) is read decimated to ``max_px`` (from its overviews), so each layer is drawn
once, warped to the map's projection so that every pixel lies where it belongs, and handed to
``ipyleaflet.ImageOverlay`` as a data URI: no server, no network, the same in a notebook saved as HTML, and
the very images the paper page embeds. Zoomed in on a large tile, :meth:`Explorer.refine` redraws the
layers for the current view at full resolution, which is what a tile server would add.
"""

from __future__ import annotations

import base64
import html
import io as _io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.transform import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

from lakepaper import io, paths
from lakepaper.errors import InputError, ParameterError

#: The raster layers of a tile: (stage folder, file pattern, layer name).
RASTERS = {
    "rgb": ("01_composite", "tiles/{tile}.tif", "composite: true colour (stage 01)"),
    "ndwi": ("01_composite", "tiles/{tile}.tif", "composite: NDWI (stage 01)"),
    "prob": ("04_predict", "tiles/{tile}_prob.tif", "U-Net lake probability (stage 04)"),
    "mask": ("04_predict", "tiles/{tile}_mask.tif", "U-Net raw mask (stage 04)"),
}
#: NDWI shown from black to white over this range (as Fig. 8's basemaps).
NDWI_RANGE = (-0.6, 0.6)
#: Stage 04 writes the probability x this (uint8) and the mask as 1 lake, 0 not, 255 no data.
PROB_SCALE, MASK_NODATA = 250.0, 255

#: Outline colours of the vector layers, as Figs. 7-9 (lakepaper.figures.comparison.CATALOGUE_COLOURS:
#: GLAKES tab:blue, PLD tab:green, the truth black; this product yellow, as Fig. 8 draws it over true colour).
STYLES = {
    "product": {"name": "lakes: this product (stage 05)", "color": "#ffff00", "weight": 2},
    "glakes": {"name": "GLAKES", "color": "#1f77b4", "weight": 1.5},
    "pld": {"name": "PLD", "color": "#2ca02c", "weight": 1.5},
    "truth": {"name": "truth (simulated world)", "color": "#000000", "weight": 1.5, "dashArray": "4 3"},
    "cases": {"name": "river rule: polygons the mask cut (before it)", "color": "#ff7f0e", "weight": 1.5},
}

#: Why each river case ended as it did (lakepaper.postprocess.rules.river_rule).
RIVER_CASES = {
    "a": "case a: cut by the river mask, area ratio {ratio} >= {t}, intersects GLAKES: kept whole (a lake on a river)",
    "b": "case b: cut by the river mask, area ratio {ratio} >= {t}, not in GLAKES: the masked part kept",
    "c": "case c: cut by the river mask, area ratio {ratio} < {t} but intersects GLAKES: the masked part kept",
    "d": "case d: cut by the river mask, area ratio {ratio} < {t}, not in GLAKES: deleted as a river residue",
    "r": "a reservoir joined to a river: the river cut off (area ratio {ratio} < {t}), the reservoir kept",
    "R": "a reservoir crossed by a river: spared by the river mask, kept whole (area ratio {ratio})",
}


# --- rendering ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlay:
    """An image to lay over a Web Mercator map between ``bounds`` ((south, west), (north, east)), degrees."""

    image: bytes
    mime: str
    bounds: tuple[tuple[float, float], tuple[float, float]]
    size: tuple[int, int]  # (width, height) pixels

    def data_url(self) -> str:
        return f"data:{self.mime};base64," + base64.b64encode(self.image).decode("ascii")


def warp(
    path: str | Path,
    bands: Sequence[int],
    *,
    max_px: int = 1024,
    nodata: float | None = None,
    box: Sequence[float] | None = None,
):
    """Bands of a raster warped to Web Mercator (EPSG:3857), nearest neighbour, at most ``max_px`` a side.

    Only the part within ``box`` (west, south, east, north, degrees) when given: zoomed in, a window of a
    large tile is drawn at its full resolution. The source is read already decimated to about ``max_px``
    (from its overviews where it has them), so a 10,980-px Sentinel-2 tile is never read whole.

    Returns:
        (data (n, rows, cols) float32 with NaN where the source has no data or nothing was warped,
        bounds ((south, west), (north, east)) in degrees).

    Raises:
        InputError: the file is missing or unreadable; ParameterError: ``box`` misses the raster.
    """
    from rasterio.windows import Window, from_bounds

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such raster")
    if max_px < 16:
        raise ParameterError("max_px", f"expected at least 16 pixels a side, got {max_px}")
    try:
        with rasterio.open(path) as ds:
            win = Window(0, 0, ds.width, ds.height)
            if box is not None:
                inside = from_bounds(*transform_bounds("EPSG:4326", ds.crs, *box), ds.transform)
                inside = inside.round_offsets(op="floor").round_lengths(op="ceil")
                try:
                    win = win.intersection(inside)
                except rasterio.errors.WindowError as exc:
                    raise ParameterError("box", f"{tuple(box)} does not overlap {path}") from exc
            k = max(1.0, max(win.width, win.height) / max_px)
            shape = (len(bands), max(1, math.ceil(win.height / k)), max(1, math.ceil(win.width / k)))
            src = ds.read(list(bands), window=win, out_shape=shape, resampling=Resampling.nearest).astype(np.float32)
            nd = ds.nodata if nodata is None else nodata
            if nd is not None:
                src[src == nd] = np.nan
            src_t = ds.window_transform(win) * Affine.scale(win.width / shape[2], win.height / shape[1])
            left, bottom, right, top = rasterio.windows.bounds(win, ds.transform)
            dst_t, w, h = calculate_default_transform(ds.crs, "EPSG:3857", shape[2], shape[1], left, bottom, right, top)
            dst = np.full((len(bands), h, w), np.nan, np.float32)
            reproject(
                src,
                dst,
                src_transform=src_t,
                src_crs=ds.crs,
                src_nodata=np.nan,
                dst_transform=dst_t,
                dst_crs="EPSG:3857",
                dst_nodata=np.nan,
                resampling=Resampling.nearest,
            )
    except rasterio.errors.RasterioError as exc:
        raise InputError(path, f"unreadable raster ({exc})") from exc
    left, top = dst_t * (0, 0)
    right, bottom = dst_t * (w, h)
    west, south, east, north = transform_bounds("EPSG:3857", "EPSG:4326", left, bottom, right, top)
    return dst, ((south, west), (north, east))


def _encode(rgba: np.ndarray, fmt: str) -> tuple[bytes, str]:
    from PIL import Image

    buf = _io.BytesIO()
    if fmt == "png":
        Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
        return buf.getvalue(), "image/png"
    if fmt == "jpeg":
        rgb = rgba[..., :3].copy()
        rgb[rgba[..., 3] == 0] = 255  # no data: white, as the figures' background
        grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
        image = Image.fromarray(rgb[..., 0], "L") if grey else Image.fromarray(rgb, "RGB")
        image.save(buf, format="JPEG", quality=75 if grey else 80, optimize=True)
        return buf.getvalue(), "image/jpeg"
    raise ParameterError("fmt", f"expected 'png' or 'jpeg', got {fmt!r}")


def _band_index(path: Path, name: str) -> int:
    with rasterio.open(path) as ds:
        names = list(ds.descriptions)
        scale = ds.tags().get("SCALE")
    if name not in names or scale is None:
        raise InputError(path, f"not a lakepaper composite (needs a {name} band and a SCALE tag)")
    return names.index(name) + 1


def _scale(path: Path) -> float:
    with rasterio.open(path) as ds:
        return float(ds.tags()["SCALE"])


def render(
    path: str | Path, kind: str, *, max_px: int = 1024, fmt: str = "png", box: Sequence[float] | None = None
) -> Overlay:
    """One layer of a tile as an image over the map.

    Args:
        path: the raster: a stage 01 composite (``kind`` rgb or ndwi), a stage 04 ``_prob.tif`` (prob) or
            ``_mask.tif`` (mask, also stage 05's final mask).
        kind: ``rgb`` (B4 B3 B2 stretched between the 2nd and 98th percentiles, as the figures),
            ``ndwi`` (grey over :data:`NDWI_RANGE`), ``prob`` (viridis, probability 0-1) or ``mask``
            (lake pixels cyan, others transparent, no data grey).
        max_px: longest side of the image.
        fmt: ``png`` (transparent where there is no data) or ``jpeg`` (smaller; no data white).
        box: only this part (west, south, east, north, degrees), at up to ``max_px`` (:func:`warp`).
    """
    path = Path(path)
    if kind == "rgb":
        bands = [_band_index(path, b) for b in ("B4", "B3", "B2")]
        data, bounds = warp(path, bands, max_px=max_px, box=box)
        data /= _scale(path)
        valid = np.isfinite(data).all(axis=0)
        lo, hi = np.nanpercentile(data[:, valid], [2, 98]) if valid.any() else (0.0, 1.0)
        rgb = np.clip((data - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        rgba = np.dstack([*np.nan_to_num(rgb * 255), valid * 255.0])
    elif kind == "ndwi":
        data, bounds = warp(path, [_band_index(path, "NDWI")], max_px=max_px, box=box)
        v = np.clip((data[0] / _scale(path) - NDWI_RANGE[0]) / (NDWI_RANGE[1] - NDWI_RANGE[0]), 0, 1)
        valid = np.isfinite(v)
        g = np.nan_to_num(v * 255)
        rgba = np.dstack([g, g, g, valid * 255.0])
    elif kind == "prob":
        from matplotlib import colormaps

        data, bounds = warp(path, [1], max_px=max_px, box=box)
        p = data[0] / PROB_SCALE
        valid = np.isfinite(p)
        rgba = colormaps["viridis"](np.nan_to_num(np.clip(p, 0, 1))) * 255.0
        rgba[..., 3] = valid * 255.0
    elif kind == "mask":
        data, bounds = warp(path, [1], max_px=max_px, nodata=-1, box=box)  # 255 is a value to draw here, not a hole
        m = data[0]
        rgba = np.zeros((*m.shape, 4), np.float32)
        rgba[m == 1] = (0, 230, 255, 255)
        rgba[m == MASK_NODATA] = (128, 128, 128, 160)
    else:
        raise ParameterError("kind", f"expected one of rgb, ndwi, prob, mask; got {kind!r}")
    image, mime = _encode(np.round(rgba).astype(np.uint8), fmt)
    h, w = rgba.shape[:2]
    return Overlay(image, mime, bounds, (w, h))


# --- a build ----------------------------------------------------------------------------------------


@dataclass
class Build:
    """The files of one profile's build that the map shows (``build/<profile>``, or ``root``).

    Raises:
        InputError: stage 01 has not run (no composite to show).
    """

    profile: str = "demo"
    root: Path | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root) if self.root is not None else paths.build_root() / self.profile
        if not (self.root / "01_composite" / "tiles").is_dir():
            raise InputError(
                self.root / "01_composite", f"no composites: run `make all PROFILE={self.profile}` (stage 01) first"
            )

    def path(self, stage: str, rel: str) -> Path:
        return self.root / stage / rel

    def tiles(self) -> list[str]:
        """The tiles with a composite, sorted."""
        return sorted(p.stem for p in (self.root / "01_composite" / "tiles").glob("*.tif"))

    def raster(self, kind: str, tile: str) -> Path | None:
        """The file of a raster layer (:data:`RASTERS`) of a tile; None where its stage has not made it."""
        if kind not in RASTERS:
            raise ParameterError("kind", f"expected one of {sorted(RASTERS)}, got {kind!r}")
        if tile not in self.tiles():
            raise ParameterError("tile", f"no composite of tile {tile!r} in {self.root}; tiles: {self.tiles()}")
        stage, rel, _ = RASTERS[kind]
        p = self.path(stage, rel.format(tile=tile))
        return p if p.is_file() else None

    def tile_bounds(self, tile: str) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the tile's composite, degrees."""
        with rasterio.open(self.path("01_composite", f"tiles/{tile}.tif")) as ds:
            return transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)

    def manifest(self, stage: str) -> dict:
        m = self.root / stage / "manifest.json"
        return io.read_manifest(m.parent) if m.is_file() else {}

    def _vector(self, key: str, *candidates: Path) -> gpd.GeoDataFrame | None:
        if key not in self._cache:
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                self._cache[key] = None
            elif found.suffix == ".parquet":
                self._cache[key] = gpd.read_parquet(found).to_crs(4326)
            else:
                self._cache[key] = gpd.read_file(found).to_crs(4326)
        return self._cache[key]

    def product(self) -> gpd.GeoDataFrame | None:
        """Stage 05's lakes (``lakes.parquet``, else ``lakes.gpkg``); None before stage 05 has run."""
        d = self.root / "05_postprocess"
        return self._vector("product", d / "lakes.parquet", d / "lakes.gpkg")

    def river_cases(self) -> gpd.GeoDataFrame | None:
        """Every polygon stage 05's river mask cut, before the mask (``river_cases.gpkg``)."""
        return self._vector("cases", self.root / "05_postprocess" / "river_cases.gpkg")

    def catalogue(self, name: str) -> gpd.GeoDataFrame | None:
        """GLAKES or PLD as stage 05 read them (the path its manifest records), else the world's file."""
        if name not in ("glakes", "pld"):
            raise ParameterError("name", f"expected 'glakes' or 'pld', got {name!r}")
        record = (self.manifest("05_postprocess").get("parameters", {}).get("references") or {}).get(name) or {}
        recorded = Path(record["path"]) if record.get("path") else None
        world = self.root / "00_world" / "references" / f"{name}.shp"
        return self._vector(name, *(p for p in (recorded, world) if p is not None))

    def truth(self) -> gpd.GeoDataFrame | None:
        """The simulated world's lakes (``00_world/truth/lakes.parquet``); None on real data."""
        return self._vector("truth", self.root / "00_world" / "truth" / "lakes.parquet")

    def params(self) -> dict[str, Any]:
        """Stage 05's parameters as it recorded them, over the profile's defaults."""
        from lakepaper import params

        try:
            base = params.resolve(self.profile)
        except ParameterError:
            base = params.resolve("paper")
        return {**base, **(self.manifest("05_postprocess").get("parameters") or {})}


# --- the inspector -----------------------------------------------------------------------------------


def _best_overlap(lakes: gpd.GeoDataFrame, other: gpd.GeoDataFrame) -> pd.DataFrame:
    """For each lake (index), the row of ``other`` it overlaps most and the share of the lake it covers."""
    if other is None or not len(other) or not len(lakes):
        return pd.DataFrame(columns=["other", "share"])
    tree = shapely.STRtree(other.geometry.values)
    li, oi = tree.query(lakes.geometry.values, predicate="intersects")
    if not len(li):
        return pd.DataFrame(columns=["other", "share"])
    a = lakes.geometry.values[li]
    inter = shapely.area(shapely.intersection(a, other.geometry.values[oi]))  # degrees², fine for a share
    share = inter / np.maximum(shapely.area(a), 1e-30)
    df = pd.DataFrame({"lake": lakes.index.values[li], "other": oi, "share": share})
    df = df.sort_values("share", ascending=False).drop_duplicates("lake").set_index("lake")
    return df[df.share > 0]


def _fmt(v: float) -> str:
    return f"{v:.2f}" if v >= 0.01 else f"{v:.4f}"


def lake_rules(row: pd.Series, p: dict[str, Any], ratio: float | None = None) -> list[str]:
    """The post-processing rules that touched a lake of the product, each with why (``rule: why``).

    Read from the product's columns (``source``, ``sources``, ``reservoir``, ``river_case``) and, for the
    river rule, the Area Ratio of the cut polygon under it (``river_cases.gpkg``).
    """
    out = []
    source, sources = str(row.get("source", "")), str(row.get("sources", "")).split("+")
    if source == "prediction":
        out.append(f"prediction: found by the U-Net (stage 04's mask of tile {row.get('tile', '?')})")
    elif source == "glakes":
        out.append(
            f"completion: added from GLAKES (a natural lake > {p.get('glakes_completion_min_km2', 1)} km² or a "
            "reservoir, after the floodplain mask)"
        )
    elif source == "pld":
        out.append(
            f"completion: added from the PLD (a lake in an arid zone, aridity index < {p.get('aridity_threshold')})"
        )
    elif source == "manual":
        out.append("manual review: added by the edit layer")
    added = [s for s in sources if s and s != source]
    if added:
        out.append(f"completion: united with the {' and '.join(s.upper() for s in added)} lake(s) it overlaps")
    if bool(row.get("reservoir", False)):
        out.append("river: a reservoir (OSM, GeoDAR or GLAKES type 2, or by a GeoDAR dam): spared by the river mask")
    case = str(row.get("river_case", "") or "")
    if case in RIVER_CASES:
        r = "?" if ratio is None or not math.isfinite(ratio) else f"{ratio:.2f}"
        out.append("river: " + RIVER_CASES[case].format(ratio=r, t=p.get("area_ratio_threshold")))
    if source == "prediction" and len(out) == 1:
        out.append(
            f"ocean, river, minimum area ({p.get('min_lake_area_km2')} km²): passed untouched"
            if row.get("area_km2", 0) >= (p.get("min_lake_area_km2") or 0)
            else "minimum area: below it (should not be in the product)"
        )
    return out


def lake_records(build: Build, lakes: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """The product's lakes with what the inspector shows.

    Columns added: ``rules`` (list of ``rule: why``), ``glakes_id`` / ``pld_id`` (the catalogue lake it
    overlaps most, or None) and, on the simulated world, ``truth`` (a sentence: the truth lake under it, its
    type and areas, and the share of this lake it covers; or none).

    Args:
        lakes: a subset of the product (default: all of it).

    Raises:
        InputError: stage 05 has not run.
    """
    if lakes is None:
        lakes = build.product()
        if lakes is None:
            raise InputError(build.root / "05_postprocess", "no lake product: run stage 05 first")
    lakes = lakes.copy()
    p = build.params()
    cases = build.river_cases()
    ratio = pd.Series(np.nan, index=lakes.index)
    if cases is not None and len(cases):
        best = _best_overlap(lakes, cases)
        ratio.loc[best.index] = cases.area_ratio.to_numpy()[best.other.astype(int)]
    lakes["rules"] = [lake_rules(r, p, ratio.loc[i]) for i, r in lakes.iterrows()]
    for name, col in (("glakes", "Lake_id"), ("pld", "lake_id")):
        cat = build.catalogue(name)
        ids = pd.Series(None, index=lakes.index, dtype=object)
        if cat is not None and col in cat:
            best = _best_overlap(lakes, cat)
            ids.loc[best.index] = [int(v) for v in cat[col].to_numpy()[best.other.astype(int)]]
        lakes[f"{name}_id"] = ids
    truth = build.truth()
    if truth is not None:
        best = _best_overlap(lakes, truth)
        text = pd.Series(
            "no truth lake here (a false lake, or water the truth does not count as a lake)", index=lakes.index
        )
        for i, (o, share) in best[["other", "share"]].iterrows():
            t = truth.iloc[int(o)]
            text.loc[i] = (
                f"truth lake {int(t.lake_id)} ({t['type']}, {t.biome}): {_fmt(float(t.area_km2))} km² typical, "
                f"{_fmt(float(t.area_max_km2))} km² at most; covers {share:.0%} of this lake"
            )
        lakes["truth"] = text
    return lakes


def inspector_html(record: pd.Series | dict) -> str:
    """The inspector's text for one lake (a row of :func:`lake_records`)."""
    r = dict(record)
    rows = [
        ("lake", f"#{r.get('id')} (tile {r.get('tile', '?')})"),
        ("area", f"{_fmt(float(r.get('area_km2', float('nan'))))} km²"),
        (
            "source",
            f"{r.get('source')} ({r.get('sources')})" if r.get("sources") != r.get("source") else r.get("source"),
        ),
    ]
    for name, label in (("glakes_id", "GLAKES"), ("pld_id", "PLD")):
        if r.get(name) is not None and not (isinstance(r.get(name), float) and math.isnan(r[name])):
            rows.append((label, f"overlaps lake {r[name]}"))
    if r.get("truth"):
        rows.append(("truth", r["truth"]))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    rules = "".join(f"<li>{html.escape(x)}</li>" for x in r.get("rules") or [])
    return f"<table class='lp-inspector'>{body}</table><b>rules</b><ul>{rules}</ul>"


def in_bounds(gdf: gpd.GeoDataFrame | None, bounds: Sequence[float]) -> gpd.GeoDataFrame | None:
    """The rows of ``gdf`` that intersect (west, south, east, north)."""
    if gdf is None:
        return None
    return gdf[gdf.intersects(shapely.box(*bounds))]


# --- the map ---------------------------------------------------------------------------------------


@dataclass
class Explorer:
    """What :func:`explore` made: the map, its named layers, the inspector and the records behind it."""

    map: Any
    build: Build
    tile: str
    layers: dict[str, Any]
    inspector: Any
    records: gpd.GeoDataFrame | None

    def show(self, lake_id: int) -> str:
        """Fill the inspector with one lake of the product (as a click on it does); returns its HTML."""
        if self.records is None or not (self.records.id == lake_id).any():
            raise ParameterError("lake_id", f"no lake {lake_id!r} in tile {self.tile}'s product")
        text = inspector_html(self.records[self.records.id == lake_id].iloc[0])
        self.inspector.value = text
        return text

    def refine(self, max_px: int = 1024) -> tuple[float, float, float, float]:
        """Redraw the raster layers for the map's current view (as the browser reports it): zoomed in on a large
        tile, its pixels at full resolution, as a tile server would serve them. Returns the view's box."""
        if not self.map.bounds:
            raise ParameterError("map.bounds", "the map has not been displayed yet: show it, zoom in, then refine")
        (south, west), (north, east) = self.map.bounds
        box = (west, south, east, north)
        for kind, layer in self.layers.items():
            if kind in RASTERS and (path := self.build.raster(kind, self.tile)) is not None:
                try:
                    ov = render(path, kind, max_px=max_px, box=box)
                except ParameterError:  # the view left the tile: keep what is drawn
                    continue
                layer.url, layer.bounds = ov.data_url(), ov.bounds
        return box

    def _clicked(self, feature=None, properties=None, **_):
        props = properties or (feature or {}).get("properties") or {}
        if "id" in props and props.get("layer") == "product":
            self.show(int(props["id"]))
        else:  # a catalogue or truth lake: its own attributes
            shown = {k: v for k, v in props.items() if k not in ("style", "layer")}
            name = STYLES.get(str(props.get("layer")), {}).get("name", str(props.get("layer", "")))
            self.inspector.value = (
                f"<b>{html.escape(name)}</b><table class='lp-inspector'>"
                + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in shown.items())
                + "</table>"
            )


def _geojson(gdf: gpd.GeoDataFrame, layer: str, columns: Sequence[str]) -> dict:
    keep = [c for c in columns if c in gdf]
    out = gdf[[*keep, "geometry"]].copy()
    out["layer"] = layer
    for c in keep:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: "; ".join(v) if isinstance(v, list) else v)
    return out.__geo_interface__


def fit_zoom(west: float, east: float, width_px: int = 700) -> int:
    """The web map zoom at which ``west..east`` (degrees) spans about ``width_px`` pixels (no front end needed,
    unlike ``Map.fit_bounds``)."""
    span = max(east - west, 1e-6)
    return int(min(18, max(2, math.floor(math.log2(width_px * 360 / (256 * span))))))


def explore(
    profile: str = "demo",
    tile: str = "",
    *,
    root: str | Path | None = None,
    max_px: int = 1024,
    split: bool = True,
    basemap: bool = True,
) -> Explorer:
    """A geemap map of one tile of a build, ready to display (``explorer.map``).

    Layers (each when its stage has run): the composite as true colour and NDWI, the U-Net's probability
    and raw mask, the river rule's cut polygons, GLAKES, PLD, the truth (simulated world) and the product;
    a layer control, a split view (composite | probability) and an inspector filled by a click on a lake.

    Args:
        profile: the build profile (``build/<profile>``).
        tile: the tile to show (``""``: the one with most lakes in the product, else the first).
        root: the profile's build folder, if not ``build/<profile>``.
        max_px: longest side of each raster layer's image.
        split: add the split view.
        basemap: keep geemap's OpenStreetMap basemap (tiles from the network; without it the map is blank
            around the tile, which is all it needs offline).

    Raises:
        InputError: no composite in the build; ParameterError: unknown tile.
    """
    import geemap
    import ipyleaflet
    import ipywidgets

    build = Build(profile, root)
    tiles = build.tiles()
    if not tile:
        product = build.product()
        counts = product.tile.value_counts() if product is not None and "tile" in product else pd.Series(dtype=int)
        tile = str(counts.index[0]) if len(counts) and counts.index[0] in tiles else tiles[0]
    if tile not in tiles:
        raise ParameterError("tile", f"no composite of tile {tile!r} in {build.root}; tiles: {tiles}")
    west, south, east, north = build.tile_bounds(tile)
    m = geemap.Map(center=((south + north) / 2, (west + east) / 2), zoom=fit_zoom(west, east), ee_initialize=False)
    if not basemap:
        for layer in list(m.layers):
            m.remove(layer)
    m.panes = {"lp_left": {"zIndex": 300}, "lp_right": {"zIndex": 310}}
    layers: dict[str, Any] = {}
    for kind, visible, opacity, pane in (
        ("rgb", True, 1.0, "lp_left"),
        ("ndwi", False, 1.0, "lp_left"),
        ("prob", True, 0.85, "lp_right"),
        ("mask", False, 0.9, "lp_right"),
    ):
        path = build.raster(kind, tile)
        if path is None:
            continue
        ov = render(path, kind, max_px=max_px)
        layer = ipyleaflet.ImageOverlay(
            url=ov.data_url(), bounds=ov.bounds, name=RASTERS[kind][2], opacity=opacity, visible=visible, pane=pane
        )
        m.add(layer)
        layers[kind] = layer

    box = (west, south, east, north)
    vectors = [
        ("cases", build.river_cases(), ["case", "area_ratio", "glakes", "reservoir", "tile"]),
        ("glakes", build.catalogue("glakes"), ["Lake_id", "Lake_type", "Lake_area"]),
        ("pld", build.catalogue("pld"), ["lake_id", "ref_area"]),
        ("truth", build.truth(), ["lake_id", "type", "biome", "area_km2", "area_max_km2"]),
    ]
    records = None
    product = in_bounds(build.product(), box)
    if product is not None:
        records = lake_records(build, product)
        vectors.append(("product", records, ["id", "area_km2", "source", "sources", "rules", "truth", "tile"]))
    explorer = Explorer(m, build, tile, layers, None, records)
    for key, gdf, columns in vectors:
        gdf = in_bounds(gdf, box)
        if gdf is None or (key == "cases" and not len(gdf)):
            continue
        style = dict(STYLES[key])
        name = style.pop("name")
        layer = ipyleaflet.GeoJSON(
            data=_geojson(gdf, key, columns),
            name=name,
            style={**style, "fill": True, "fillOpacity": 0.05 if key != "product" else 0.15},
            hover_style={"weight": style["weight"] + 2, "fillOpacity": 0.35},
            visible=key != "cases",
        )
        layer.on_click(explorer._clicked)
        m.add(layer)
        layers[key] = layer

    explorer.inspector = ipywidgets.HTML(
        value="<i>Click a lake: area, source, the rules that touched it"
        + (", its truth" if build.truth() is not None else "")
        + ".</i>",
        layout=ipywidgets.Layout(max_width="380px", max_height="320px", overflow="auto"),
    )
    m.add(ipyleaflet.WidgetControl(widget=explorer.inspector, position="bottomright"))
    m.add(ipyleaflet.LayersControl(position="topright"))
    if split and "rgb" in layers and "prob" in layers:
        m.add(ipyleaflet.SplitMapControl(left_layer=layers["rgb"], right_layer=layers["prob"]))
    return explorer


def earth_engine_ready() -> bool:
    """Whether the Earth Engine client is installed and credentials exist on disk (no network)."""
    try:
        from lakepaper.composite import gee
    except ImportError:
        return False
    return gee.credentials_available()


def view_tile(lat: float, lon: float, p: dict[str, Any], size_px: int = 1024):
    """A :class:`lakepaper.composite.gee.Tile` of ``size_px`` square on the ``resolution_m`` grid of the UTM
    zone of (lat, lon), centred there (to a pixel)."""
    from pyproj import Transformer

    from lakepaper.composite import gee

    if not (-80 <= lat <= 84 and -180 <= lon <= 180):
        raise ParameterError("center", f"({lat}, {lon}) is outside the UTM zones (latitude -80..84)")
    if size_px < 1:
        raise ParameterError("size_px", f"expected at least 1 pixel, got {size_px}")
    zone = min(60, int((lon + 180) // 6) + 1)
    epsg = (32600 if lat >= 0 else 32700) + zone
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    res = float(p["resolution_m"])
    left = (math.floor(x / res) - size_px // 2) * res
    top = (math.floor(y / res) + size_px - size_px // 2) * res
    return gee.Tile("view", epsg, (left, top - size_px * res, left + size_px * res, top))


def add_gee_composite(
    explorer: Explorer, *, profile: str | None = None, size_px: int = 1024, project: str | None = None
) -> Any:
    """Add stage 01's composite computed by Earth Engine (true colour) around the map's centre.

    The tile is :func:`view_tile` of the centre, its scenes and recipe those of the profile's parameters
    (:func:`lakepaper.composite.gee.composite_image`); pan, then call again for another place.

    Raises:
        InputError: no Earth Engine credentials, or Earth Engine refused them.
    """
    from lakepaper import params
    from lakepaper.composite import gee

    gee.initialize(project)
    p = params.resolve(profile or explorer.build.profile)
    lat, lon = explorer.map.center
    image = gee.composite_image(view_tile(lat, lon, p, size_px), p)
    vis = {"bands": ["B4", "B3", "B2"], "min": 0, "max": 0.3 * p["composite_scale"]}
    explorer.map.addLayer(image, vis, f"Earth Engine composite (stage 01 recipe) at {lat:.3f}, {lon:.3f}")
    return image
