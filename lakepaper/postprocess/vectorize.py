"""Binary lake masks to polygons, and one polygon per lake across tile borders.

Vectorising (:func:`vectorize`)
    ``rasterio.features.shapes`` (GDAL's polygonizer) traces each connected region of lake pixels
    into one polygon whose vertices are pixel corners, in the raster's CRS. **Connectivity** is 4 by
    default (:data:`CONNECTIVITY`): pixels that share an edge belong to one lake, pixels that meet
    only at a corner are two lakes, as ArcGIS' *Raster to Polygon* (which the authors used) and
    :mod:`lakepaper.metrics` count them. With ``connectivity=8`` corner neighbours join one lake;
    GDAL then writes rings that touch themselves at a corner, which OGC forbids, so those
    polygons are repaired with ``shapely.make_valid`` into a MultiPolygon (one lake, parts meeting
    at corners) and counted as repaired. **Holes**: dry pixels enclosed by a lake (islands) are
    holes (interior rings), so a lake's area excludes its islands; a hole that meets the shore or
    another hole at a single corner is valid and kept. No data (255) is not lake. The coordinate
    lists GDAL returns are turned into shapely geometries in one call (``from_ragged_array``),
    2-5x faster than one ``shape()`` per polygon.
Tiles and partitions (:class:`Partition`)
    Each tile of the prediction is one partition: its polygons in the tile's own CRS (metres), and
    its *core*, the part of the raster it owns. Where tiles were exported with an overlap (the
    inference margin), the core is the tile's footprint in the tile grid (``tile_grid.gpkg``) and
    pixels outside it are ignored; without a grid the core is the whole raster.
Tile borders (:func:`merge_seams`)
    A lake cut by a tile edge is several polygons, one per tile. Only polygons that reach the
    *seam zone* of their partition (within ``tol`` of the core's border, or inside another
    tile's core where cores overlap) can be such pieces; they are gathered from every partition
    (few: the lakes along tile borders), found pairwise with an STR-tree over their EPSG:4326
    envelopes grown by ``tol``, and tested exactly in one CRS: two pieces are one lake when the
    area of one intersected with the other grown by ``tol`` (mitred, so square corners stay
    square) exceeds ``tol`` x half a pixel. A shared edge of one pixel passes, pieces that only
    meet at a corner do not (4-connectivity; with 8, any contact within ``tol`` joins them), and
    overlapping pieces (overlapping tiles) always do. Connected pieces are unioned in the CRS of
    the first piece; where they come from tiles of different CRSs (UTM zone boundaries), gaps
    narrower than ``tol`` that reprojection leaves are closed by a ``tol`` closing. The union
    goes to the partition whose core holds its representative point (a point inside it). Tiles
    in one UTM zone share pixel corners exactly, so the union of their pieces is exact.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio import features
from rasterio.transform import Affine
from rasterio.windows import Window
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lakepaper.errors import InputError, ParameterError

#: Default pixel connectivity of a lake (see the module docstring).
CONNECTIVITY = 4
#: No-data value of the masks of stage 04.
NODATA = 255
#: Seam tolerance as a share of a pixel: pieces closer than this are tested as neighbours.
SEAM_TOLERANCE_PX = 0.25


def check_connectivity(connectivity: int) -> int:
    if connectivity not in (4, 8):
        raise ParameterError("connectivity", f"must be 4 or 8, got {connectivity!r}")
    return connectivity


# --- vectorising -----------------------------------------------------------------------------------


def vectorize(
    values: np.ndarray,
    transform: Affine,
    *,
    mask: np.ndarray | None = None,
    connectivity: int = CONNECTIVITY,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Polygons of the connected regions of equal value where ``mask`` is True.

    Args:
        values: uint8/int16/int32/float32 raster (a binary mask, or lake ids to keep pieces apart).
        transform: the raster's affine transform (coordinates are written in its CRS).
        mask: where to trace (default: ``values != 0``).
        connectivity: 4 or 8.

    Returns:
        (polygons as a shapely array, the value of each, number repaired to be valid).
    """
    check_connectivity(connectivity)
    values = np.asarray(values)
    if values.dtype == bool:
        values = values.astype(np.uint8)
    if values.dtype not in (np.uint8, np.int16, np.uint16, np.int32, np.float32):
        values = values.astype(np.int32)
    if mask is None:
        mask = values != 0
    if not mask.any():
        return np.empty(0, dtype=object), np.empty(0, dtype=values.dtype), 0
    coords: list = []
    ring_offsets = [0]
    poly_offsets = [0]
    vals = []
    for geom, value in features.shapes(values, mask=mask, transform=transform, connectivity=connectivity):
        for ring in geom["coordinates"]:
            coords.extend(ring)
            ring_offsets.append(len(coords))
        poly_offsets.append(len(ring_offsets) - 1)
        vals.append(value)
    geoms = shapely.from_ragged_array(
        shapely.GeometryType.POLYGON,
        np.asarray(coords, dtype=float),
        (np.asarray(ring_offsets, dtype=np.int64), np.asarray(poly_offsets, dtype=np.int64)),
    )
    bad = ~shapely.is_valid(geoms)
    n_bad = int(bad.sum())
    if n_bad:
        geoms[bad] = [_polygonal(g) for g in shapely.make_valid(geoms[bad])]
    return geoms, np.asarray(vals).astype(values.dtype), n_bad


def _polygonal(g):
    """The polygonal part of a repaired geometry (lines and points that make_valid may add are dropped)."""
    return polygonal(g)


def polygonal(g, *, min_area: float = 0.0):
    """The polygon parts of a geometry (collections flattened, lines and points dropped, parts of at most
    ``min_area`` dropped) as a Polygon, a MultiPolygon, or an empty Polygon."""
    parts, todo = [], [g]
    while todo:  # flatten nested collections
        for p in shapely.get_parts(todo.pop()):
            t = shapely.get_type_id(p)
            if t == 3 and p.area > min_area:
                parts.append(p)
            elif t in (6, 7):
                todo.append(p)
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


# --- partitions ------------------------------------------------------------------------------------


@dataclass
class Partition:
    """One tile's share of the product: its polygons in its own CRS and the core it owns."""

    name: str
    crs: CRS
    core: shapely.Polygon
    frame: gpd.GeoDataFrame
    res: float = 10.0

    def __post_init__(self) -> None:
        if self.frame.geometry.name != "geometry":
            self.frame = self.frame.rename_geometry("geometry")
        self.frame = self.frame.reset_index(drop=True)

    def with_frame(self, frame: gpd.GeoDataFrame) -> Partition:
        return Partition(self.name, self.crs, self.core, frame.reset_index(drop=True), self.res)


@dataclass(frozen=True)
class MaskTile:
    """A tile of the prediction on disk: its mask file, grid and the window it owns (its core)."""

    name: str
    path: Path
    crs: CRS
    transform: Affine
    shape: tuple[int, int]
    core: Window

    @property
    def res(self) -> float:
        return abs(self.transform.a)

    @property
    def core_transform(self) -> Affine:
        return self.transform * Affine.translation(self.core.col_off, self.core.row_off)

    @property
    def core_shape(self) -> tuple[int, int]:
        return int(self.core.height), int(self.core.width)

    def core_polygon(self) -> shapely.Polygon:
        h, w = self.core_shape
        t = self.core_transform
        x0, y0 = t.c, t.f
        x1, y1 = x0 + w * t.a, y0 + h * t.e
        return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def mask_tiles(
    prediction_dir: str | os.PathLike[str],
    *,
    tile_grid: gpd.GeoDataFrame | None = None,
    pattern: str = "*_mask.tif",
    tiles: Sequence[str] | None = None,
) -> list[MaskTile]:
    """The mask files of a prediction folder (``<tile>_mask.tif``), sorted by tile name.

    Args:
        prediction_dir: folder with ``<tile>_mask.tif`` (stage 04's ``tiles`` folder).
        tile_grid: optional footprints (any CRS) with a ``tile`` column: each tile's core is its footprint
            on its raster's grid, rounded to whole pixels; tiles not in the grid own their whole raster.
        tiles: only these tiles (default: every mask file).

    Raises:
        InputError: the folder is missing or holds no masks, a requested tile has none, or a mask is not a
            single-band uint8 raster with a CRS.
    """
    folder = Path(prediction_dir)
    if not folder.is_dir():
        raise InputError(folder, "prediction folder not found (stage 04's tiles, or a stand-in)")
    suffix = pattern.lstrip("*")
    files = {p.name[: -len(suffix)]: p for p in sorted(folder.glob(pattern))}
    if tiles is not None:
        missing = [t for t in tiles if t not in files]
        if missing:
            raise InputError(folder, f"no mask for tile(s) {missing}")
        files = {t: files[t] for t in tiles}
    if not files:
        raise InputError(folder, f"no prediction masks ({pattern}) here")
    grid = None
    if tile_grid is not None and len(tile_grid):
        grid = tile_grid.set_index("tile").geometry
    out = []
    for name, path in files.items():
        try:
            with rasterio.open(path) as ds:
                if ds.count != 1 or ds.dtypes[0] != "uint8" or ds.crs is None:
                    raise InputError(path, "a mask must be one uint8 band (1 lake, 0 not, 255 no data) with a CRS")
                crs, transform, shape = CRS.from_user_input(ds.crs.to_wkt()), ds.transform, (ds.height, ds.width)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(path, f"not a readable GeoTIFF ({exc})") from exc
        window = Window(0, 0, shape[1], shape[0])
        if grid is not None and name in grid.index:
            fp = gpd.GeoSeries([grid.loc[name]], crs=tile_grid.crs).to_crs(crs).iloc[0]
            window = _core_window(fp, transform, shape)
        out.append(MaskTile(name, path, crs, transform, shape, window))
    return out


def _core_window(footprint, transform: Affine, shape: tuple[int, int]) -> Window:
    """The window of whole pixels whose centres lie inside the footprint's bounding box, within the raster."""
    left, bottom, right, top = footprint.bounds
    inv = ~transform
    c0, r0 = inv * (left, top)
    c1, r1 = inv * (right, bottom)
    c0, c1 = sorted((c0, c1))
    r0, r1 = sorted((r0, r1))
    c0, r0 = max(0, round(c0)), max(0, round(r0))
    c1, r1 = min(shape[1], round(c1)), min(shape[0], round(r1))
    if c1 <= c0 or r1 <= r0:
        return Window(0, 0, 0, 0)
    return Window(c0, r0, c1 - c0, r1 - r0)


def read_core(tile: MaskTile) -> np.ndarray:
    """The mask within the tile's core (uint8 1 lake, 0 not, 255 no data)."""
    with rasterio.open(tile.path) as ds:
        return ds.read(1, window=tile.core)


def vectorize_tile(tile: MaskTile, *, connectivity: int = CONNECTIVITY) -> tuple[Partition, dict]:
    """The lake polygons of one tile's core as a partition (columns ``tile``), and counts."""
    mask = read_core(tile)
    geoms, _, n_bad = vectorize(mask, tile.core_transform, mask=mask == 1, connectivity=connectivity)
    frame = gpd.GeoDataFrame({"tile": np.full(len(geoms), tile.name, dtype=object)}, geometry=geoms, crs=tile.crs)
    info = {
        "tile": tile.name,
        "pixels": int(mask.size),
        "lake_pixels": int((mask == 1).sum()),
        "nodata_pixels": int((mask == NODATA).sum()),
        "polygons": len(geoms),
        "repaired": n_bad,
    }
    return Partition(tile.name, tile.crs, tile.core_polygon(), frame, tile.res), info


# --- reprojection ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


_KEYS: dict[int, tuple[object, str]] = {}


def _key(crs) -> str:
    """A CRS as WKT, cached per object (``to_wkt`` costs ~0.1 ms; it is asked for per piece)."""
    hit = _KEYS.get(id(crs))
    if hit is not None and hit[0] is crs:
        return hit[1]
    key = CRS.from_user_input(crs).to_wkt()
    if len(_KEYS) > 4096:
        _KEYS.clear()
    _KEYS[id(crs)] = (crs, key)
    return key


def reproject(geoms, src, dst) -> np.ndarray:
    """Geometries from CRS ``src`` to ``dst`` (vertices transformed; no densification)."""
    geoms = np.asarray(geoms, dtype=object)
    ks, kd = _key(src), _key(dst)
    if ks == kd or not len(geoms):
        return geoms
    tr = _transformer(ks, kd)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)


# --- connected pieces -----------------------------------------------------------------------------


def connected(a: np.ndarray, b: np.ndarray, *, tol: float, res: float, connectivity: int) -> np.ndarray:
    """Whether pieces a[i] and b[i] (same CRS) are one lake (see the module docstring)."""
    if not len(a):
        return np.zeros(0, bool)
    if connectivity == 8:
        return shapely.dwithin(a, b, tol)
    grown = shapely.buffer(b, tol, join_style="mitre")
    return shapely.area(shapely.intersection(a, grown)) > tol * 0.5 * res


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _union(geoms: Sequence, *, tol: float, close: bool, connectivity: int):
    u = shapely.union_all(np.asarray(geoms, dtype=object))
    if close and connectivity == 4 and shapely.get_num_geometries(u) > 1:
        grown = shapely.union_all(shapely.buffer(np.asarray(geoms, dtype=object), tol, join_style="mitre"))
        u = shapely.buffer(grown, -tol, join_style="mitre")
    return polygonal(shapely.make_valid(u) if not u.is_valid else u)


def first_of_largest(rows: pd.DataFrame, areas: np.ndarray) -> dict:
    """Default attributes of a union: those of its largest piece."""
    return rows.iloc[int(np.argmax(areas))].to_dict()


Agg = Callable[[pd.DataFrame, np.ndarray], dict]


def dissolve(
    frame: gpd.GeoDataFrame,
    *,
    res: float,
    connectivity: int = CONNECTIVITY,
    agg: Agg = first_of_largest,
    tol_px: float = SEAM_TOLERANCE_PX,
    joinable: np.ndarray | None = None,
) -> tuple[gpd.GeoDataFrame, int]:
    """Union the polygons of one CRS that are one lake (overlapping, sharing an edge, or closer than ``tol_px``
    pixels, a gap the union then closes); return (frame, unions).

    Args:
        joinable: optional boolean per row: only pairs with at least one joinable row are united (the prediction's
            own polygons are apart on purpose, e.g. where the river mask cut a lake in two).
    """
    if len(frame) < 2:
        return frame.reset_index(drop=True), 0
    tol = tol_px * res
    geoms = frame.geometry.values
    i, j = frame.sindex.query(geoms, predicate="dwithin", distance=tol)
    keep = i < j
    if joinable is not None:
        joinable = np.asarray(joinable, bool)
        keep &= joinable[i] | joinable[j]
    i, j = i[keep], j[keep]
    ok = connected(np.asarray(geoms[i]), np.asarray(geoms[j]), tol=tol, res=res, connectivity=connectivity)
    i, j = i[ok], j[ok]
    if not len(i):
        return frame.reset_index(drop=True), 0
    labels = _components(len(frame), i, j)
    sizes = np.bincount(labels)
    multi = sizes[labels] > 1
    attrs = frame.drop(columns=frame.geometry.name)
    rows = []
    for lab in np.unique(labels[multi]):
        idx = np.flatnonzero(labels == lab)
        g = np.asarray(geoms[idx])
        row = agg(attrs.iloc[idx], shapely.area(g))
        row[frame.geometry.name] = _union(g, tol=tol, close=True, connectivity=connectivity)
        rows.append(row)
    merged = gpd.GeoDataFrame(rows, geometry=frame.geometry.name, crs=frame.crs)
    out = pd.concat([frame[~multi], merged], ignore_index=True)
    return gpd.GeoDataFrame(out, geometry=frame.geometry.name, crs=frame.crs), len(rows)


def _cores_4326(parts: Sequence[Partition]) -> np.ndarray:
    out = []
    for p in parts:
        dense = shapely.segmentize(p.core, max(p.res * 64, 1.0))
        out.append(reproject([dense], p.crs, 4326)[0])
    return np.asarray(out, dtype=object)


def _seam_zones(parts: Sequence[Partition], cores4326: np.ndarray, tol_px: float) -> list:
    tree = shapely.STRtree(cores4326)
    zones = []
    for k, p in enumerate(parts):
        tol = tol_px * p.res
        pieces = [shapely.buffer(shapely.boundary(p.core), tol, join_style="mitre")]
        for n in tree.query(cores4326[k], predicate="intersects"):
            if n == k:
                continue
            other = reproject([shapely.segmentize(parts[n].core, max(parts[n].res * 64, 1.0))], parts[n].crs, p.crs)[0]
            overlap = shapely.intersection(p.core, other)
            if shapely.area(overlap) > 0:
                pieces.append(overlap)
        zones.append(shapely.union_all(pieces))
    return zones


def _grown_boxes(geoms4326: np.ndarray, tol_m: np.ndarray) -> np.ndarray:
    b = shapely.bounds(geoms4326)
    lat = np.clip(np.maximum(np.abs(b[:, 1]), np.abs(b[:, 3])), 0, 89.0)
    dx = 2 * tol_m / (111320.0 * np.cos(np.radians(lat)))
    dy = 2 * tol_m / 110574.0
    return shapely.box(b[:, 0] - dx, b[:, 1] - dy, b[:, 2] + dx, b[:, 3] + dy)


def merge_seams(
    parts: Sequence[Partition],
    *,
    key: str | None = None,
    connectivity: int = CONNECTIVITY,
    agg: Agg = first_of_largest,
    tol_px: float = SEAM_TOLERANCE_PX,
) -> tuple[list[Partition], dict]:
    """One polygon per lake across tile borders (see the module docstring).

    Args:
        parts: the partitions (each frame in its partition's CRS).
        key: optional column that must be equal for pieces to join (e.g. a GLAKES ``Lake_id``).
        agg: attributes of a union from its pieces' rows and areas (default: the largest piece's).

    Returns:
        (the partitions with joined lakes, each in the partition that holds its representative point;
        counts: ``seam_pieces`` tested, ``joined_pieces``, ``unions``).
    """
    check_connectivity(connectivity)
    parts = list(parts)
    info = {"seam_pieces": 0, "joined_pieces": 0, "unions": 0}
    if len(parts) < 2:
        return parts, info
    cores4326 = _cores_4326(parts)
    zones = _seam_zones(parts, cores4326, tol_px)
    owner, row, native = [], [], []
    for k, p in enumerate(parts):
        if not len(p.frame):
            continue
        idx = np.unique(p.frame.sindex.query(zones[k], predicate="intersects"))
        owner.append(np.full(len(idx), k))
        row.append(idx)
        native.append(np.asarray(p.frame.geometry.values[idx]))
    if not owner:
        return parts, info
    owner, row, native = np.concatenate(owner), np.concatenate(row), np.concatenate(native)
    n = len(owner)
    info["seam_pieces"] = n
    if n < 2:
        return parts, info
    g4326 = np.empty(n, dtype=object)
    for k in np.unique(owner):
        sel = owner == k
        g4326[sel] = reproject(native[sel], parts[k].crs, 4326)
    res = np.array([parts[k].res for k in owner])
    boxes = _grown_boxes(g4326, tol_px * res)
    i, j = shapely.STRtree(boxes).query(boxes, predicate="intersects")
    keep = (i < j) & (owner[i] != owner[j])
    if key is not None:
        keys = np.array([parts[k].frame[key].iloc[r] for k, r in zip(owner, row, strict=True)], dtype=object)
        keep &= keys[i] == keys[j]
    i, j = i[keep], j[keep]
    ok = np.zeros(len(i), bool)
    crs_key = np.array([_key(parts[k].crs) for k in owner], dtype=object)
    for ka, kb in {(crs_key[a], crs_key[b]) for a, b in zip(i, j, strict=True)}:
        sel = (crs_key[i] == ka) & (crs_key[j] == kb)
        a = native[i[sel]]
        b = reproject(native[j[sel]], kb, ka)
        r = np.maximum(res[i[sel]], res[j[sel]])
        tol = tol_px * r
        if connectivity == 8:
            ok[sel] = shapely.dwithin(a, b, tol)
        else:
            grown = shapely.buffer(b, tol, join_style="mitre")
            ok[sel] = shapely.area(shapely.intersection(a, grown)) > tol * 0.5 * r
    i, j = i[ok], j[ok]
    if not len(i):
        return parts, info
    labels = _components(n, i, j)
    sizes = np.bincount(labels)
    joined = np.flatnonzero(sizes[labels] > 1)
    joined = joined[np.lexsort((row[joined], owner[joined], labels[joined]))]  # by union, then partition, row
    # the attribute rows of every joined piece, gathered once (one slice per partition, not one per piece)
    table = pd.concat(
        [
            parts[k].frame.drop(columns="geometry").iloc[row[joined[owner[joined] == k]]]
            for k in np.unique(owner[joined])
        ],
        ignore_index=True,
    )
    order = np.concatenate([np.flatnonzero(owner[joined] == k) for k in np.unique(owner[joined])])
    table.index = order
    table = table.sort_index()
    core_tree = shapely.STRtree(cores4326)
    drop: dict[int, list[int]] = {}
    add: dict[int, list[dict]] = {}
    starts = np.flatnonzero(np.r_[True, labels[joined][1:] != labels[joined][:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(joined)], strict=True):
        members = joined[a:b]
        first = owner[members[0]]
        work = parts[first].crs
        geoms = np.concatenate([reproject(native[[m]], parts[owner[m]].crs, work) for m in members])
        mixed = len({crs_key[m] for m in members}) > 1
        tol = tol_px * float(res[members].max())
        u = _union(geoms, tol=tol, close=mixed, connectivity=connectivity)
        point = reproject([shapely.point_on_surface(u)], work, 4326)[0]
        hits = sorted(core_tree.query(point, predicate="intersects"))
        home = int(hits[0]) if hits else int(first)
        attrs = agg(table.iloc[a:b].reset_index(drop=True), shapely.area(geoms))
        attrs["geometry"] = reproject([u], work, parts[home].crs)[0]
        add.setdefault(home, []).append(attrs)
        for m in members:
            drop.setdefault(int(owner[m]), []).append(int(row[m]))
        info["joined_pieces"] += len(members)
        info["unions"] += 1
    return _apply(parts, drop, add), info


def _apply(parts: Sequence[Partition], drop: dict, add: dict) -> list[Partition]:
    """Each partition with its rows ``drop[k]`` (positions) removed and the records ``add[k]`` appended."""
    out = []
    for k, p in enumerate(parts):
        frame = p.frame
        if k in drop:
            frame = frame.drop(index=frame.index[drop[k]])
        if k in add:
            new = gpd.GeoDataFrame(add[k], geometry="geometry", crs=p.crs)
            if frame.geometry.name != "geometry":
                new = new.rename_geometry(frame.geometry.name)
            frame = pd.concat([frame, new], ignore_index=True)
            frame = gpd.GeoDataFrame(frame, geometry=p.frame.geometry.name, crs=p.crs)
        out.append(p.with_frame(frame))
    return out


def split_to_cores(parts: Sequence[Partition]) -> list[Partition]:
    """Cut every polygon that reaches beyond its partition's core into per-core pieces, each to its core's partition.

    The inverse of :func:`merge_seams`: afterwards every polygon lies within its partition's core, so two layers
    can be dissolved partition by partition and the seams joined once more.
    """
    parts = list(parts)
    if len(parts) < 2:
        return parts
    cores4326 = _cores_4326(parts)
    tree = shapely.STRtree(cores4326)
    add: dict[int, list] = {}
    drop: dict[int, np.ndarray] = {}
    for k, p in enumerate(parts):
        if not len(p.frame):
            continue
        geoms = p.frame.geometry.values
        shapely.prepare(p.core)
        out = np.flatnonzero(~shapely.within(np.asarray(geoms), p.core))
        if not len(out):
            continue
        drop[k] = out
        attrs = p.frame.drop(columns=p.frame.geometry.name)
        g4326 = reproject(np.asarray(geoms[out]), p.crs, 4326)
        for r, g, g4 in zip(out, np.asarray(geoms[out]), g4326, strict=True):
            for n in tree.query(g4, predicate="intersects"):
                target = parts[n]
                piece = shapely.intersection(reproject([g], p.crs, target.crs)[0], target.core)
                for sub in shapely.get_parts(piece):
                    if shapely.get_type_id(sub) == 3 and shapely.area(sub) > 0:
                        add.setdefault(int(n), []).append({**attrs.iloc[r].to_dict(), "geometry": sub})
    return _apply(parts, drop, add)


# --- back to pixels -------------------------------------------------------------------------------


def burn(
    parts: Sequence[Partition], tile: MaskTile, *, index: bool = False
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The polygons of every partition that reach a tile's core, burnt onto the core's grid (pixel centres).

    Args:
        index: False: uint8 1 inside a polygon. True: int32 1..n, one number per polygon.

    Returns:
        (raster, the (partition, row) of each number 1..n; empty when ``index`` is False).
    """
    h, w = tile.core_shape
    box = tile.core_polygon()
    dense = shapely.segmentize(box, max(tile.res * 64, 1.0))
    geoms, owners = [], []
    for k, p in enumerate(parts):
        if not len(p.frame):
            continue
        b = box if _key(p.crs) == _key(tile.crs) else reproject([dense], tile.crs, p.crs)[0]
        idx = np.sort(p.frame.sindex.query(b, predicate="intersects"))
        if not len(idx):
            continue
        geoms.append(reproject(np.asarray(p.frame.geometry.values[idx]), p.crs, tile.crs))
        owners.extend((k, int(r)) for r in idx)
    dtype = np.int32 if index else np.uint8
    if not geoms or h == 0 or w == 0:
        return np.zeros((h, w), dtype), owners if index else []
    g = np.concatenate(geoms)
    values = np.arange(1, len(g) + 1) if index else np.ones(len(g), int)
    raster = features.rasterize(
        zip(g, values.tolist(), strict=True), out_shape=(h, w), transform=tile.core_transform, fill=0, dtype=dtype
    )
    return raster, owners if index else []
