"""One polygon per lake across tile borders, and lakes of several layers united within a tile.

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
Within a partition (:func:`dissolve`)
    Polygons of one CRS that overlap, share an edge or lie closer than ``tol`` are united, with the
    same test; completion unites the prediction with the reference lakes this way, tile by tile,
    after :func:`split_to_cores` cut every lake to the tile cores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lakepaper.postprocess.crs import crs_key, reproject
from lakepaper.postprocess.partitions import Partition
from lakepaper.postprocess.vectorize import CONNECTIVITY, check_connectivity, polygonal

#: Seam tolerance as a share of a pixel: pieces closer than this are tested as neighbours.
SEAM_TOLERANCE_PX = 0.25


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
    piece_crs = np.array([crs_key(parts[k].crs) for k in owner], dtype=object)
    for ka, kb in {(piece_crs[a], piece_crs[b]) for a, b in zip(i, j, strict=True)}:
        sel = (piece_crs[i] == ka) & (piece_crs[j] == kb)
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
        mixed = len({piece_crs[m] for m in members}) > 1
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
