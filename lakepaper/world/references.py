"""Imperfect reference datasets of the simulated world, made the way the real ones differ from reality.

GLAKESplus post-processes its U-Net map with existing global datasets (paper
section 2.4). This module derives a look-alike of each from the truth of the
simulated tiles, with the *kind* of error the real product has, so that the
post-processing has the same work to do as on the real data:

==========================  ==============================================================================
file                        real product and how the look-alike differs from the truth
==========================  ==============================================================================
osm_land_polygons.gpkg      OSM land polygons (osmdata.openstreetmap.de): everything not ocean. The
                            coastline is generalised (Douglas-Peucker, 30-50 m), so it departs from the
                            true shore by a few 10 m pixels and leaves ocean slivers outside it.
osm_water_polygons.gpkg     OSM water polygons: the ocean, the exact complement of the land polygons in
                            the tile (same generalised coastline; tidal inlets of lagoons included).
osm_rivers.gpkg             OSM river areas (``natural=water`` + ``water=river``/riverbank) from the
                            truth river mask, generalised by 15 m. ``fclass`` = "river".
osm_reservoirs.gpkg         OSM reservoirs (``water=reservoir``): truth reservoirs at their *maximum*
                            extent (full supply level, as mappers draw them). ``fclass``, ``name``.
grwl_centerlines.gpkg       GRWL (Allen & Pavelsky, 2018): centre lines of rivers mapped from Landsat at
                            30 m, so only rivers >= 90 m wide; ~500 m segments, each with its own width
                            jittered by +-10 % (``width_m``, ``segmentID``).
geodar_dams.gpkg            GeoDAR v1.1 dams (Wang et al., 2022): points at the truth dams, ``id_v11``
                            shared with their reservoir, ``reservoir_id`` = the truth lake id.
geodar_reservoirs.gpkg      GeoDAR v1.1 reservoirs: polygons at the *typical* extent (GeoDAR takes them
                            from GRanD/HydroLAKES/Circa-2015 snapshots). Incomplete: one reservoir of the
                            world (drawn with ``default_rng([seed, 7])``, when the world has at least two)
                            has its dam but no polygon, as ~5 % of GeoDAR v1.1 dams lack one.
glakes.shp                  GLAKES (Pi et al., 2022): lakes >= 0.03 km2 on a 30 m grid at the multi-year
                            *maximum* extent (seasonal rings and reservoir drawdown zones included),
                            with the false positives the paper removes (its Fig. 4): where GLAKES' own
                            floodplain definition missed a floodplain (our truth ``floodplain`` mask),
                            seasonally flooded paddies, flooded river banks and flood water spreading up
                            to ~60 m from the water bodies are mapped as lake, gluing neighbouring lakes
                            into large polygons. Coastal lagoons are included. ``Lake_id``,
                            ``Area_bound`` (km2, UTM), ``Lake_type`` (1 natural, 2 reservoir).
pld.shp                     SWOT Prior Lake Database v1 (Wang et al., 2023), whose main source is the
                            Circa-2015 lake map (Sheng et al., 2016): lakes >= 0.01 km2 on a 30 m grid
                            at the typical extent (water >= 50 % of the time); in arid tiles (aridity <
                            0.2) it catches ephemeral lakes better (>= 25 %). ~5 % of lakes of 0.01-0.03
                            km2 are missed. ``lake_id``, ``ref_area`` (km2, UTM).
aridity_index/<tile>.tif    Global Aridity Index v3 (Zomer et al., 2022): int32 AI x 10000 at 30 arc-s
                            (1/120 deg) in EPSG:4326, the tile's lon/lat bounds plus 0.05 deg, snapped to
                            the global 1/120 deg grid; the biome's aridity times a smooth field within
                            +-10 %. Nodata -2147483648 (never written inside the grid).
floodplain/<tile>.tif       SHIFT (Zheng et al., 2024) v2 90 m layout: uint8 at 3 arc-s (1/1200 deg) in
                            EPSG:4326, 1 floodplain (>= half of the cell in the truth floodplain mask),
                            0 not floodplain, 255 no data (outside the tile).
occurrence/<tile>.tif       Global Surface Water occurrence (Pekel et al., 2016): uint8 percent of the
                            time water was seen, 255 no data, on a 30 m grid aligned with the tile's UTM
                            grid (origin = tile origin, ceil(n/3) cells a side). Mean of the truth
                            occurrence over each 3x3 block plus integer noise in [-5, 5] where water was
                            seen. Landsat sees water under rice canopy and flooded riparian vegetation
                            only part of the time, so paddies and flooded river banks get half their true
                            occurrence; the flood water GLAKES mistakes for lakes is seen 5-20 % of the
                            time.
<product>/index.gpkg        Footprints (EPSG:4326) of the per-tile rasters: ``tile``, ``path`` (relative
                            to ``out_dir``), ``crs`` (the raster's CRS as "EPSG:n").
==========================  ==============================================================================

The 30 % threshold of paper 2.4 is the *water occurrence* threshold GLAKES
applies inside floodplains (Pi et al., 2022: "30 % occurrence for
floodplains"); GLAKESplus re-applies it inside the more complete SHIFT
floodplain. Here paddies (true occurrence 33 %, seen 17 %), flooded banks
(~30 %, seen ~15 %) and flood water (5-20 %) fall below it, lake cores stay
far above, so masking GLAKES where ``floodplain == 1`` and occurrence < 30 %
splits the glued lake groups as in the paper's Fig. 4.

All vector files are in EPSG:4326, as the real ones; geometries are made on
each tile's UTM grid (``rasterio.features.shapes``), areas are measured there
(km2) and only then reprojected. GeoPackages are written with GDAL's
``OGR_CURRENT_DATE`` fixed and Shapefiles with ``DBF_DATE_LAST_UPDATE`` fixed,
so the same truths and seed give byte-identical files. Every file is written
under a temporary name and renamed into place (a Shapefile's ``.shp`` last).
Randomness: one ``np.random.default_rng([seed, 7, tile_index])`` per tile
(``tile_index`` = position in ``truths``), spawned into one stream per product
so adding a product never changes the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio import features
from rasterio.transform import Affine
from rasterio.warp import transform_bounds
from scipy import ndimage
from shapely.affinity import affine_transform
from shapely.geometry import LineString, MultiLineString, Point, box, shape
from shapely.ops import substring

from lakepaper import io
from lakepaper.io import write_vector
from lakepaper.world.fields import fractal_field
from lakepaper.world.truth import DRY, PIXEL_M, TileTruth

#: Timestamp written into GeoPackage metadata and Shapefile DBF headers (fixed for byte-identical files).
#: Products in the order their random streams are spawned from each tile's generator. Append only.
STREAMS = ("osm_coast", "osm_rivers", "grwl", "glakes", "pld", "aridity", "occurrence")

GLAKES_MIN_KM2 = 0.03  # Pi et al. (2022)
PLD_MIN_KM2 = 0.01  # Wang et al. (2023)
PLD_MISS_SHARE = 0.05  # share of 0.01-0.03 km2 lakes the PLD misses
GRWL_MIN_WIDTH_M = 90.0  # three Landsat pixels
GRWL_SEGMENT_M = 500.0
ARID_AI = 0.2  # paper 2.4: arid where AI < 0.2
AI_SCALE = 10000  # Global-AI v3 stores AI x 10000 as integers
AI_CELL_DEG = 1.0 / 120.0  # 30 arc-seconds
AI_MARGIN_DEG = 0.05
AI_NODATA = -2147483648
SHIFT_CELL_DEG = 1.0 / 1200.0  # 3 arc-seconds, ~90 m
CELL_30M = 3  # 10 m pixels per 30 m cell, per side
INLET_MIN_M2 = 4000.0  # narrow sea channels at least this large survive coastline generalisation
FLOOD_REACH_M = 60.0  # farthest GLAKES' false flood water spreads from a water body
CANOPY_SEEN = 0.5  # share of inundation Landsat sees under rice canopy / riparian vegetation


@dataclass
class _Tile:
    """One tile and the per-product random streams drawn from its generator."""

    index: int
    truth: TileTruth
    rng: dict[str, np.random.Generator]

    @property
    def name(self) -> str:
        return self.truth.site.name

    @property
    def n(self) -> int:
        return self.truth.shape[0]


def build_references(truths: list[TileTruth], out_dir: Path, *, seed: int) -> dict[str, Path]:
    """Write the reference datasets of a world of tiles into ``out_dir``.

    Args:
        truths: every tile of the world, in the world's order (the order sets each tile's random stream).
        out_dir: folder to write into (created).
        seed: the world's seed.

    Returns:
        Product name -> path: one entry per vector file ("glakes" -> ``glakes.shp`` ...), one per raster
        product naming its footprint table ("floodplain" -> ``floodplain/index.gpkg``), and one per raster
        file ("floodplain/T07" -> ``floodplain/T07.tif``). See the module docstring for the layout.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tiles = []
    for i, t in enumerate(truths):
        children = np.random.default_rng([seed, 7, i]).spawn(len(STREAMS))
        tiles.append(_Tile(i, t, dict(zip(STREAMS, children, strict=True))))
    names = [t.name for t in tiles]
    if len(set(names)) != len(names):
        raise ValueError(f"tile names must be unique, got {names}")

    out: dict[str, Path] = {}
    land, ocean = _osm_coast(tiles)
    out["osm_land_polygons"] = write_vector(land, out_dir / "osm_land_polygons.gpkg", "Polygon")
    out["osm_water_polygons"] = write_vector(ocean, out_dir / "osm_water_polygons.gpkg", "Polygon")
    out["osm_rivers"] = write_vector(_osm_rivers(tiles), out_dir / "osm_rivers.gpkg", "Polygon")
    out["osm_reservoirs"] = write_vector(_osm_reservoirs(tiles), out_dir / "osm_reservoirs.gpkg", "MultiPolygon")
    out["grwl_centerlines"] = write_vector(_grwl(tiles), out_dir / "grwl_centerlines.gpkg", "LineString")
    dams, reservoirs = _geodar(tiles, seed)
    out["geodar_dams"] = write_vector(dams, out_dir / "geodar_dams.gpkg", "Point")
    out["geodar_reservoirs"] = write_vector(reservoirs, out_dir / "geodar_reservoirs.gpkg", "MultiPolygon")

    gsw = {t.name: _gsw_seen(t) for t in tiles}
    out["glakes"] = write_vector(_glakes(tiles, gsw), out_dir / "glakes.shp", "Polygon")
    out["pld"] = write_vector(_pld(tiles), out_dir / "pld.shp", "Polygon")

    for product, writer in (
        ("aridity_index", _write_aridity),
        ("floodplain", _write_floodplain),
        ("occurrence", _write_occurrence),
    ):
        rows = []
        for t in tiles:
            rel = f"{product}/{t.name}.tif"
            crs, bounds = writer(t, out_dir / rel, gsw[t.name])
            out[f"{product}/{t.name}"] = out_dir / rel
            footprint = (
                gpd.GeoSeries([shapely.segmentize(box(*bounds), 100.0)], crs=crs).to_crs(4326).iloc[0]
                if crs != "EPSG:4326"
                else box(*bounds)
            )
            rows.append({"tile": t.name, "path": rel, "crs": crs, "geometry": footprint})
        index = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)
        out[product] = write_vector(index, out_dir / product / "index.gpkg", "Polygon")
    return out


# --- vectors ---------------------------------------------------------------------------------


def _footprint(t: TileTruth) -> shapely.Polygon:
    """The tile's outline in its UTM CRS."""
    n_rows, n_cols = t.shape
    left, top = t.transform.c, t.transform.f
    return box(left, top + n_rows * t.transform.e, left + n_cols * t.transform.a, top)


def _vectorise(raster: np.ndarray, transform: Affine, mask: np.ndarray | None = None) -> list[tuple[object, int]]:
    """Polygons of equal-valued 4-connected regions: [(shapely geometry, value)] in raster order."""
    src = raster.astype(np.uint8) if raster.dtype == bool else raster
    if mask is None:
        mask = raster.astype(bool)
    return [(shape(g), int(v)) for g, v in features.shapes(src, mask=mask, connectivity=4, transform=transform)]


def _frame(rows: list[dict], columns: dict[str, str], crs) -> gpd.GeoDataFrame:
    """A GeoDataFrame with fixed column dtypes even when ``rows`` is empty."""
    data = {c: pd.Series([r[c] for r in rows], dtype=dt) for c, dt in columns.items()}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([r["geometry"] for r in rows], crs=crs), crs=crs)


def _to_4326(frames: list[gpd.GeoDataFrame], columns: dict[str, str]) -> gpd.GeoDataFrame:
    """Reproject per-tile frames to EPSG:4326 and concatenate them in tile order."""
    parts = [f.to_crs(4326) for f in frames if len(f)]
    if not parts:
        return _frame([], columns, 4326)
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=4326)


def _polygons(geom) -> list:
    """The polygons of a (multi)polygon, empty ones dropped."""
    if geom.is_empty:
        return []
    return [g for g in getattr(geom, "geoms", [geom]) if not g.is_empty and g.area > 0]


def _osm_coast(tiles: list[_Tile]) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """OSM land and water (ocean) polygons with a coastline generalised by 30-50 m."""
    land_frames, ocean_frames = [], []
    for t in tiles:
        tr = t.truth
        foot = _footprint(tr)
        ocean_mask = tr.masks["ocean"]
        if ocean_mask.any():
            tol = float(t.rng["osm_coast"].uniform(30.0, 50.0))
            raw = shapely.union_all([g for g, _ in _vectorise(ocean_mask, tr.transform)])
            # Mappers trace tidal inlets however narrow; keep channels the simplification would cut.
            narrow = raw.difference(raw.buffer(-tol).buffer(tol))
            inlets = [g for g in _polygons(narrow) if g.area >= INLET_MIN_M2]
            sea = shapely.union_all([shapely.simplify(raw, tol, preserve_topology=True), *inlets])
            sea = sea.intersection(foot)
            land = foot.difference(sea)
        else:
            sea, land = shapely.Polygon(), foot
        seg = 10 * PIXEL_M  # keep long straight edges straight after reprojection
        land_frames.append(_frame([{"geometry": shapely.segmentize(g, seg)} for g in _polygons(land)], {}, tr.crs))
        ocean_frames.append(_frame([{"geometry": shapely.segmentize(g, seg)} for g in _polygons(sea)], {}, tr.crs))
    return _to_4326(land_frames, {}), _to_4326(ocean_frames, {})


def _osm_rivers(tiles: list[_Tile]) -> gpd.GeoDataFrame:
    """OSM river areas: the truth river mask (channel and banks), generalised by 10-20 m."""
    cols = {"fclass": "object"}
    frames = []
    for t in tiles:
        tr = t.truth
        rows = []
        if tr.masks["river"].any():
            tol = float(t.rng["osm_rivers"].uniform(10.0, 20.0))
            for g, _ in _vectorise(tr.masks["river"], tr.transform):
                for p in _polygons(shapely.simplify(g, tol, preserve_topology=True)):
                    rows.append({"fclass": "river", "geometry": p})
        frames.append(_frame(rows, cols, tr.crs))
    return _to_4326(frames, cols)


def _reservoir_lakes(tr: TileTruth) -> list:
    return [lake for lake in tr.lakes if lake.type == "reservoir"]


def _osm_reservoirs(tiles: list[_Tile]) -> gpd.GeoDataFrame:
    """OSM reservoirs at their maximum extent (every pixel the lake id covers)."""
    cols = {"fclass": "object", "name": "object", "area_km2": "float64"}
    frames = []
    for t in tiles:
        tr = t.truth
        rows = []
        for k, lake in enumerate(_reservoir_lakes(tr), start=1):
            sel = tr.lake_id == lake.lake_id
            geom = shapely.union_all([g for g, _ in _vectorise(sel, tr.transform)])
            geom = shapely.simplify(geom, PIXEL_M, preserve_topology=True)
            rows.append(
                {
                    "fclass": "reservoir",
                    "name": f"{t.name} reservoir {k}",
                    "area_km2": geom.area / 1e6,
                    "geometry": shapely.MultiPolygon(_polygons(geom)),
                }
            )
        frames.append(_frame(rows, cols, tr.crs))
    return _to_4326(frames, cols)


def _pixel_to_map(geom, transform: Affine):
    """Pixel (col, row) geometry -> map coordinates of the tile grid."""
    a, b, c, d, e, f = transform[:6]
    return affine_transform(geom, [a, b, d, e, c, f])


def _grwl(tiles: list[_Tile]) -> gpd.GeoDataFrame:
    """GRWL centre lines of rivers >= 90 m wide, in ~500 m segments with jittered widths."""
    cols = {"segmentID": "int64", "width_m": "float64"}
    frames, seg_id = [], 0
    for t in tiles:
        tr = t.truth
        rows = []
        if tr.river_line is not None and tr.river_width_m >= GRWL_MIN_WIDTH_M:
            n_rows, n_cols = tr.shape
            inside = tr.river_line.intersection(box(0, 0, n_cols, n_rows))
            parts = list(inside.geoms) if isinstance(inside, MultiLineString) else [inside]
            for part in parts:
                if not isinstance(part, LineString) or part.is_empty:
                    continue
                line = _pixel_to_map(part, tr.transform)
                k = max(1, round(line.length / GRWL_SEGMENT_M))
                for j in range(k):
                    seg_id += 1
                    width = tr.river_width_m * (1.0 + float(t.rng["grwl"].uniform(-0.1, 0.1)))
                    rows.append(
                        {
                            "segmentID": seg_id,
                            "width_m": round(width, 1),
                            "geometry": substring(line, j / k, (j + 1) / k, normalized=True),
                        }
                    )
        frames.append(_frame(rows, cols, tr.crs))
    return _to_4326(frames, cols)


def _geodar(tiles: list[_Tile], seed: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """GeoDAR v1.1 dams and reservoirs; one reservoir of the world has no polygon."""
    dam_cols = {"id_v11": "int64", "reservoir_id": "int64"}
    res_cols = {"id_v11": "int64", "reservoir_id": "int64", "area_km2": "float64"}
    entries = []  # (tile, dam (row, col), reservoir lake)
    for t in tiles:
        lakes = _reservoir_lakes(t.truth)
        for dam in t.truth.dams:
            match = [lake for lake in lakes if math.isclose(lake.row, dam[0]) and math.isclose(lake.col, dam[1])]
            entries.append((t, dam, match[0] if match else None))
    n_res = sum(e[2] is not None for e in entries)
    drop = int(np.random.default_rng([seed, 7]).integers(n_res)) if n_res >= 2 else -1
    dam_frames, res_frames = [], []
    k_res = 0
    for t in tiles:
        tr = t.truth
        dam_rows, res_rows = [], []
        for id_v11, (tt, dam, lake) in enumerate(entries, start=1):
            if tt is not t:
                continue
            rid = lake.lake_id if lake is not None else -1
            dam_rows.append(
                {"id_v11": id_v11, "reservoir_id": rid, "geometry": _pixel_to_map(Point(dam[1], dam[0]), tr.transform)}
            )
            if lake is None:
                continue
            k_res += 1
            if k_res - 1 == drop:
                continue
            sel = (tr.lake_id == lake.lake_id) & (tr.threshold < 0.5)
            geom = shapely.union_all([g for g, _ in _vectorise(sel, tr.transform)])
            res_rows.append(
                {
                    "id_v11": id_v11,
                    "reservoir_id": rid,
                    "area_km2": geom.area / 1e6,
                    "geometry": shapely.MultiPolygon(_polygons(geom)),
                }
            )
        dam_frames.append(_frame(dam_rows, dam_cols, tr.crs))
        res_frames.append(_frame(res_rows, res_cols, tr.crs))
    return _to_4326(dam_frames, dam_cols), _to_4326(res_frames, res_cols)


# --- the 30 m lake products ------------------------------------------------------------------


def _grid_30m(tr: TileTruth) -> Affine:
    """The 30 m grid sharing the tile's origin."""
    return tr.transform @ Affine.scale(CELL_30M)


def _block_mean(a: np.ndarray, f: int = CELL_30M) -> np.ndarray:
    """Mean over f x f blocks; a ragged last block averages the pixels it has."""
    n_rows, n_cols = a.shape
    pr, pc = -n_rows % f, -n_cols % f
    v = np.pad(a.astype(np.float64), ((0, pr), (0, pc)))
    w = np.pad(np.ones(a.shape), ((0, pr), (0, pc)))
    shp = (v.shape[0] // f, f, v.shape[1] // f, f)
    return v.reshape(shp).sum(axis=(1, 3)) / w.reshape(shp).sum(axis=(1, 3))


def _flood_water(t: _Tile) -> tuple[np.ndarray, np.ndarray]:
    """Floodplain land GLAKES mistakes for lake: flood water spreading from water bodies.

    Returns:
        (mask, GSW occurrence percent of those pixels, 5..20 falling with distance from the water).
    """
    tr = t.truth
    fp = tr.masks["floodplain"]
    if not fp.any():
        return np.zeros(tr.shape, bool), np.zeros(tr.shape, np.float64)
    water = (tr.lake_id > 0) | tr.masks["river"] | tr.masks["paddy"]
    dist = ndimage.distance_transform_edt(~water) * PIXEL_M
    low = 0.5 + 0.5 * np.tanh(fractal_field(t.rng["glakes"], tr.shape, beta=3.0, scale_px=tr.shape[0] / 4))
    reach = FLOOD_REACH_M * low
    flood = fp & ~water & ~tr.masks["ocean"] & (dist < reach)
    occ = np.where(flood, 5.0 + 15.0 * (1.0 - dist / np.maximum(reach, 1e-6)), 0.0)
    return flood, occ


def _gsw_seen(t: _Tile) -> dict[str, np.ndarray]:
    """What a Landsat water history sees at 10 m: occurrence percent and GLAKES' maximum water."""
    tr = t.truth
    occ = tr.occurrence().astype(np.float64)
    bank = tr.masks["river"] & (tr.threshold > 0)
    vegetated = tr.masks["paddy"] | bank
    occ[vegetated] *= CANOPY_SEEN
    flood, flood_occ = _flood_water(t)
    occ = np.maximum(occ, flood_occ)
    # GLAKES: lakes at their maximum extent, plus in a floodplain GLAKES did not know: paddies, banks, flood water.
    fp = tr.masks["floodplain"]
    glakes = ((tr.lake_id > 0) & (tr.threshold < DRY)) | (fp & (tr.masks["paddy"] | bank | flood))
    return {"occurrence": occ, "glakes_water": glakes}


def _label_30m(water10: np.ndarray) -> tuple[np.ndarray, int]:
    """30 m cells that are water in >= half of their 10 m pixels, labelled by 4-connected component."""
    cells = _block_mean(water10) >= 0.5
    return ndimage.label(cells)


def _glakes(tiles: list[_Tile], gsw: dict[str, dict[str, np.ndarray]]) -> gpd.GeoDataFrame:
    """GLAKES-like lakes: 30 m maximum extent with floodplain false positives, >= 0.03 km2."""
    cols = {"Lake_id": "int64", "Area_bound": "float64", "Lake_type": "int64"}
    frames, next_id = [], 1
    for t in tiles:
        tr = t.truth
        labels, n = _label_30m(gsw[t.name]["glakes_water"])
        res_ids = [lake.lake_id for lake in _reservoir_lakes(tr)]
        res_frac = _block_mean(np.isin(tr.lake_id, res_ids)) if res_ids else np.zeros(labels.shape)
        lake_frac = _block_mean(tr.lake_id > 0)
        idx = np.arange(1, n + 1)
        res_share = ndimage.sum(res_frac, labels, idx) / np.maximum(ndimage.sum(lake_frac, labels, idx), 1e-9)
        rows = []
        for geom, v in _vectorise(labels.astype(np.int32), _grid_30m(tr), labels > 0):
            area = geom.area / 1e6
            if area < GLAKES_MIN_KM2:
                continue
            rows.append(
                {
                    "Lake_id": next_id,
                    "Area_bound": round(area, 6),
                    "Lake_type": 2 if res_share[v - 1] > 0.5 else 1,
                    "geometry": geom,
                }
            )
            next_id += 1
        frames.append(_frame(rows, cols, tr.crs))
    return _to_4326(frames, cols)


def _pld(tiles: list[_Tile]) -> gpd.GeoDataFrame:
    """PLD-like lakes: 30 m typical (Circa-2015) extent, >= 0.01 km2, some small ones missed."""
    cols = {"lake_id": "int64", "ref_area": "float64"}
    frames, next_id = [], 1
    for t in tiles:
        tr = t.truth
        min_occ = 25 if tr.biome.aridity < ARID_AI else 50
        labels, _ = _label_30m((tr.occurrence() >= min_occ) & (tr.lake_id > 0))
        rows = []
        for geom, _ in _vectorise(labels.astype(np.int32), _grid_30m(tr), labels > 0):
            area = geom.area / 1e6
            if area < PLD_MIN_KM2:
                continue
            if area < GLAKES_MIN_KM2 and t.rng["pld"].random() < PLD_MISS_SHARE:
                continue
            rows.append({"lake_id": next_id, "ref_area": round(area, 6), "geometry": geom})
            next_id += 1
        frames.append(_frame(rows, cols, tr.crs))
    return _to_4326(frames, cols)


# --- rasters ---------------------------------------------------------------------------------


def _lonlat_grid(tr: TileTruth, cell: float, margin: float) -> tuple[Affine, int, int]:
    """A global lon/lat grid of ``cell`` degrees covering the tile (plus ``margin``), snapped to the grid."""
    b = transform_bounds(tr.crs, "EPSG:4326", *_footprint(tr).bounds, densify_pts=21)
    west = math.floor((b[0] - margin) / cell)
    east = math.ceil((b[2] + margin) / cell)
    south = math.floor((b[1] - margin) / cell)
    north = math.ceil((b[3] + margin) / cell)
    return Affine(cell, 0.0, west * cell, 0.0, -cell, north * cell), north - south, east - west


def _bounds(transform: Affine, height: int, width: int) -> tuple[float, float, float, float]:
    left, top = transform.c, transform.f
    return left, top + height * transform.e, left + width * transform.a, top


def _write_aridity(t: _Tile, path: Path, seen: dict[str, np.ndarray]) -> tuple[str, tuple]:
    """Global-AI-like int32 AI x 10000 at 30 arc-seconds: the biome's aridity within +-10 %."""
    transform, h, w = _lonlat_grid(t.truth, AI_CELL_DEG, AI_MARGIN_DEG)
    f = fractal_field(t.rng["aridity"], (h, w), beta=3.0, scale_px=max(h, w))
    peak = float(np.abs(f).max())
    rel = 0.1 * f / peak if peak > 0 else f
    ai = np.rint(t.truth.biome.aridity * (1.0 + rel) * AI_SCALE).astype(np.int32)
    io.write_raster(
        path,
        ai,
        crs="EPSG:4326",
        transform=transform,
        nodata=AI_NODATA,
        tags={"SCALE": AI_SCALE, "SOURCE": "Global-AI_ET0 v3-like (Zomer et al., 2022)"},
    )
    return "EPSG:4326", _bounds(transform, h, w)


def _write_floodplain(t: _Tile, path: Path, seen: dict[str, np.ndarray]) -> tuple[str, tuple]:
    """SHIFT-like floodplain at 3 arc-seconds: 1 floodplain, 0 not, 255 outside the tile."""
    from rasterio.warp import Resampling, reproject

    tr = t.truth
    transform, h, w = _lonlat_grid(tr, SHIFT_CELL_DEG, 0.0)
    share = np.full((h, w), np.nan, np.float32)
    reproject(
        tr.masks["floodplain"].astype(np.float32),
        share,
        src_transform=tr.transform,
        src_crs=tr.crs,
        dst_transform=transform,
        dst_crs="EPSG:4326",
        resampling=Resampling.average,
        src_nodata=None,
        dst_nodata=np.nan,
    )
    out = np.where(np.isnan(share), 255, share >= 0.5).astype(np.uint8)
    io.write_raster(
        path,
        out,
        crs="EPSG:4326",
        transform=transform,
        nodata=255,
        tags={"VALUES": "1 floodplain, 0 non-floodplain, 255 no data", "SOURCE": "SHIFT-like (Zheng et al., 2024)"},
    )
    return "EPSG:4326", _bounds(transform, h, w)


def _write_occurrence(t: _Tile, path: Path, seen: dict[str, np.ndarray]) -> tuple[str, tuple]:
    """GSW-like occurrence at 30 m on the tile grid: block mean of what Landsat sees, +-5 noise."""
    tr = t.truth
    mean = _block_mean(seen["occurrence"])
    noise = t.rng["occurrence"].integers(-5, 6, mean.shape)
    occ = np.where(mean > 0, np.clip(np.rint(mean) + noise, 0, 100), 0).astype(np.uint8)
    transform = _grid_30m(tr)
    io.write_raster(
        path,
        occ,
        crs=tr.crs,
        transform=transform,
        nodata=255,
        tags={"UNITS": "percent of observations with water", "SOURCE": "GSW-like (Pekel et al., 2016)"},
    )
    return f"EPSG:{tr.crs.to_epsg()}", _bounds(transform, *occ.shape)
