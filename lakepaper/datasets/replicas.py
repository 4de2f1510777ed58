"""Small replicas of the two datasets, in their published layouts, so the notebooks run without them.

QTP lakes (:func:`write_qtp_replica`), from the simulated world
    RGB chips of the world's plateau tiles (biome ``plateau``: T03, T04): the clear-sky mean
    reflectance of each tile (:func:`lakepaper.world.checks.clear_means`; pixels never seen clear,
    permanent snow, take their surface's reflectance), B4/B3/B2 as R/G/B, area-averaged to 17 m and
    stretched to 8 bits like a natural-colour web mosaic, each chip with its own gain, gamma and
    tint (Google Earth mosaics differ from place to place); ground truth = the true lakes at their
    typical extent (``truth/<tile>/lake_id.tif`` > 0, lake where at least half of a 17 m pixel is),
    red (255, 0, 0) on black. Both saved as JPEG, so the ground truths carry real compression noise.
    Layout::

        images/0001.jpg ...        RGB, 256 x 256
        ground_truth/0001.jpg ...  lakes red, background black
        replica.json               where each chip comes from (not part of the published layout)
        README.txt

    A few hundred 256-pixel chips from two 7.7 km tiles overlap: on the replica a test chip shares
    ground with training chips, so its scores are optimistic; the published images were "randomly
    selected" over the whole plateau.

Check dams (:func:`write_checkdam_replica`), drawn
    the world has no gullies, so a loess-like scene is synthesised: one uint8 RGB GeoTIFF at 0.75 m
    in WGS 84 / UTM zone 6N (EPSG:32606, as published), with branching gullies, check dams (a bright
    earth wall across the gully) and the flat silted *dam land* behind each dam, the class
    "gully". As in the published process, the image is cut into 256 x 256 cells, the cells without
    dam land are dropped, and each kept cell is a JPEG with its Labelme JSON beside it (polygons,
    and rectangles for the straight terrace ditches; Labelme 3.x, 4.x and 5.x files; ``imagePath``
    relative, or absolute from the annotator's Windows machine)::

        JL1KF01A_PMS02_20211111_replica.tif   the large image (*.tif)
        labelme/r000_c003.jpg ...             the screened cells annotated (*.jpg)
        labelme/r000_c003.json ...            their Labelme annotations
        truth_dam_land.gpkg                   the drawn dam land (the replica's truth; not published)
        README.txt
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import shapely
from rasterio import features
from rasterio.transform import Affine, from_origin
from shapely import affinity
from shapely.geometry import LineString, Polygon, box
from shapely.ops import substring

from lakepaper import io
from lakepaper.errors import ParameterError
from lakepaper.world.fields import fractal_field

QTP_IMAGES, QTP_TRUTH = "images", "ground_truth"
RED = (255, 0, 0)


def _fresh(out_dir: Path) -> Path:
    """Empty ``out_dir`` for a replica: only a folder that is empty or holds an earlier replica is cleared."""
    readme = out_dir / "README.txt"
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (readme.exists() and readme.read_text().startswith("Replica of")):
            raise ParameterError("out_dir", f"{out_dir} holds files that are not a replica; not overwriting them")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _save_jpeg(path: Path, pixels: np.ndarray, quality: int) -> None:
    from PIL import Image

    with io.atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="JPEG", quality=quality)


# --- QTP ---------------------------------------------------------------------------------------


def plateau_tiles(world) -> list[str]:
    """Tiles of the world whose biome is ``plateau``."""
    tiles = world.tiles()
    return sorted(tiles.loc[tiles.biome == "plateau", "tile"])


def _tile_at(world, tile: str, resolution_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, G, B reflectance (3, h, w) 0..1, lake share (h, w)) of a tile, area-averaged to ``resolution_m``."""
    from lakepaper.world.checks import clear_means
    from lakepaper.world.spectra import SURFACE_TABLE

    refl, _ = clear_means(world, tile)  # B2 B3 B4 B8, x10000, NaN where never clear
    cover, meta = io.read_raster(world.truth_path(tile, "cover"))
    lake, _ = io.read_raster(world.truth_path(tile, "lake_id"))
    fill = SURFACE_TABLE[cover[0]][..., [1, 2, 3]].transpose(2, 0, 1) * 10000  # B02 B03 B04 of the surface
    refl = np.where(np.isnan(refl[:3]), fill, refl[:3]) / 10000.0
    rgb = refl[::-1].astype(np.float32)  # B4, B3, B2
    scale = abs(meta["transform"].a) / resolution_m
    h, w = int(rgb.shape[1] * scale), int(rgb.shape[2] * scale)
    out = np.stack([cv2.resize(b, (w, h), interpolation=cv2.INTER_AREA) for b in rgb])
    share = cv2.resize((lake[0] > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return out, share


def stretch(reflectance: np.ndarray, *, gain: float = 1.0, gamma: float = 1.0, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Reflectance (3, h, w) -> 8-bit natural colour (h, w, 3): ``(gain * tint * r / 0.6) ** (1 / (1.8 gamma))``."""
    t = np.asarray(tint, np.float32)[:, None, None]
    v = np.clip(reflectance * gain * t / 0.6, 0, 1) ** (1.0 / (1.8 * gamma))
    return np.rint(v * 255).astype(np.uint8).transpose(1, 2, 0)


def _world(world):
    """The simulated world's files (:class:`lakepaper.world.files.WorldFiles`) from its folder, or as given."""
    if isinstance(world, str | os.PathLike):
        from lakepaper.world.files import WorldFiles

        return WorldFiles(Path(world))
    return world


def write_qtp_replica(
    world,
    out_dir: str | os.PathLike[str],
    *,
    n_chips: int,
    seed: int,
    chip_px: int = 256,
    resolution_m: float = 17.0,
    image_quality: int = 92,
    truth_quality: int = 75,
) -> pd.DataFrame:
    """Write a QTP-layout replica from the world's plateau tiles (see the module doc) into an empty ``out_dir``.

    ``world`` is the world's folder (stage 00's output) or its :class:`~lakepaper.world.files.WorldFiles`:
    the stages pass the folder and only this module reads the world. An earlier replica in ``out_dir`` is
    replaced; a folder holding anything else is refused.

    Where a tile is smaller than one chip at ``resolution_m`` (the tiny test world), the chips are
    taken at the coarsest resolution that fits (the tile's extent / ``chip_px``), and said so in
    ``replica.json``.

    Returns:
        One row per chip: name, tile, row, col (offset in the resampled tile), resolution_m, gain,
        gamma, lake_share.
    """
    world = _world(world)
    tiles = plateau_tiles(world)
    if not tiles:
        raise ParameterError("world", "the world has no plateau tile (T03, T04); build it with them")
    if n_chips < 1:
        raise ParameterError("qtp_replica_chips", f"must be at least 1, got {n_chips}")
    out_dir = _fresh(Path(out_dir))
    rng = np.random.default_rng([int(seed), 91])
    sources = {}
    for t in tiles:
        extent = world.tiles().set_index("tile").loc[t, "size_px"] * 10.0
        res = min(resolution_m, extent / chip_px)
        sources[t] = (*_tile_at(world, t, res), res)
    rows = []
    for i in range(n_chips):
        tile = tiles[i % len(tiles)]
        rgb, share, res = sources[tile]
        r = int(rng.integers(0, share.shape[0] - chip_px + 1))
        c = int(rng.integers(0, share.shape[1] - chip_px + 1))
        gain, gamma = float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.9, 1.1))
        tint = rng.uniform(0.95, 1.05, 3)
        image = stretch(rgb[:, r : r + chip_px, c : c + chip_px], gain=gain, gamma=gamma, tint=tint)
        lake = share[r : r + chip_px, c : c + chip_px] >= 0.5
        truth = np.zeros((chip_px, chip_px, 3), np.uint8)
        truth[lake] = RED
        name = f"{i + 1:04d}"
        _save_jpeg(out_dir / QTP_IMAGES / f"{name}.jpg", image, image_quality)
        _save_jpeg(out_dir / QTP_TRUTH / f"{name}.jpg", truth, truth_quality)
        rows.append(
            {
                "name": name,
                "tile": tile,
                "row": r,
                "col": c,
                "resolution_m": res,
                "gain": round(gain, 4),
                "gamma": round(gamma, 4),
                "lake_share": round(float(lake.mean()), 6),
            }
        )
    table = pd.DataFrame(rows)
    # the world relative to the replica, so that the file does not depend on where the build lives
    source = Path(os.path.relpath(Path(world.root).resolve(), Path(out_dir).resolve())).as_posix()
    io.write_json(out_dir / "replica.json", {"source": source, "tiles": tiles, "chips": rows})
    io.write_text(out_dir / "README.txt", _QTP_README.format(n=n_chips, tiles=", ".join(tiles), px=chip_px))
    return table


_QTP_README = """Replica of the Qinghai-Tibet Plateau lake dataset (lakepaper.datasets.replicas).
{n} RGB images ({px} x {px}, ~17 m) rendered from the simulated world's plateau tiles ({tiles}),
and as many ground truths (lakes red, background black), paired by file name.
images/        the RGB images (JPEG)
ground_truth/  the ground truths (JPEG: compression noise included, as in a re-saved ground truth)
replica.json   where each chip comes from (not part of the published dataset)
"""


# --- check dams ----------------------------------------------------------------------------------

CHECKDAM_IMAGE = "JL1KF01A_PMS02_20211111_replica.tif"
LABELME_DIR = "labelme"
LOESS = np.array([196, 170, 128], np.float32)  # yellow-brown loess, 8-bit RGB
GULLY_FLOOR = np.array([120, 100, 76], np.float32)  # shaded, incised channel
DAM_LAND = np.array([168, 172, 120], np.float32)  # flat silted land behind a dam, often cropped
DAM_WALL = np.array([226, 214, 188], np.float32)  # compacted earth of the dam
VEGETATION = np.array([112, 122, 84], np.float32)


def _meander(rng: np.random.Generator, start, heading: float, length: float, step: float = 12.0) -> LineString:
    pts, (x, y), a = [start], start, heading
    for _ in range(max(2, int(length / step))):
        a += rng.normal(0, 0.18)
        x, y = x + step * np.cos(a), y + step * np.sin(a)
        pts.append((x, y))
    return LineString(pts)


def _gullies(rng: np.random.Generator, size: int) -> tuple[list[LineString], list[LineString]]:
    """(winding gullies, straight terrace ditches) in pixel coordinates of the whole image."""
    winding, straight = [], []
    for _ in range(max(2, size // 400)):
        edge = rng.integers(0, 4)
        t = rng.uniform(0.15, 0.85) * size
        start, heading = [((t, 0), np.pi / 2), ((size, t), np.pi), ((t, size), -np.pi / 2), ((0, t), 0.0)][edge]
        main = _meander(rng, start, heading + rng.normal(0, 0.3), rng.uniform(0.7, 1.2) * size)
        winding.append(main)
        for _ in range(int(rng.integers(2, 5))):  # tributaries branching off the main gully
            d = rng.uniform(0.15, 0.85) * main.length
            p = main.interpolate(d)
            q = main.interpolate(min(d + 5, main.length))
            along = np.arctan2(q.y - p.y, q.x - p.x)
            side = along + rng.choice([-1, 1]) * rng.uniform(0.6, 1.2)
            winding.append(_meander(rng, (p.x, p.y), side, rng.uniform(0.15, 0.35) * size))
    for _ in range(max(1, size // 1000)):  # straight ditches between terraces: axis-aligned
        if rng.random() < 0.5:
            y = rng.uniform(0.1, 0.9) * size
            x0 = rng.uniform(0, 0.5) * size
            straight.append(LineString([(x0, y), (x0 + rng.uniform(0.25, 0.5) * size, y)]))
        else:
            x = rng.uniform(0.1, 0.9) * size
            y0 = rng.uniform(0, 0.5) * size
            straight.append(LineString([(x, y0), (x, y0 + rng.uniform(0.25, 0.5) * size)]))
    return winding, straight


def _dams(rng, line: LineString, *, spacing: float) -> list[tuple[Polygon, Polygon]]:
    """(dam land, dam wall) pairs along one gully, the land upstream of each wall."""
    out = []
    d = rng.uniform(0.3, 1.0) * spacing
    while d < line.length - 10:
        land_len = rng.uniform(40, 120)
        width = rng.uniform(14, 34)
        seg = substring(line, max(0.0, d - land_len), d)
        if seg.length > 15:
            land = seg.buffer(width / 2, cap_style="flat", join_style="round")
            p, q = line.interpolate(d), line.interpolate(min(d + 1, line.length))
            a = np.arctan2(q.y - p.y, q.x - p.x) + np.pi / 2
            half = width / 2 + 4
            dx, dy = half * np.cos(a), half * np.sin(a)
            wall = LineString([(p.x - dx, p.y - dy), (p.x + dx, p.y + dy)]).buffer(2.5, cap_style="flat")
            out.append((Polygon(land.exterior) if isinstance(land, Polygon) else land, wall))
        d += rng.uniform(0.6, 1.4) * spacing
    return out


def _burn(geoms, shape) -> np.ndarray:
    geoms = [g for g in geoms if not g.is_empty]
    if not geoms:
        return np.zeros(shape, bool)
    return features.rasterize([(g, 1) for g in geoms], out_shape=shape, fill=0, dtype=np.uint8).astype(bool)


def _paint(rng: np.random.Generator, size: int, gullies, ditches, lands, walls) -> np.ndarray:
    shape = (size, size)
    tex = fractal_field(rng, shape, beta=2.6, scale_px=96)
    fine = fractal_field(rng, shape, beta=1.2, scale_px=8)
    veg = fractal_field(rng, shape, beta=3.0, scale_px=220) > 1.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    warp = fractal_field(rng, shape, beta=3.2, scale_px=300) * 40
    terraces = np.sin((yy + 0.3 * xx + warp) / 9.0)  # contour terraces on the loess slopes
    img = LOESS[None, None] * (1 + 0.07 * tex[..., None] + 0.03 * fine[..., None] + 0.02 * terraces[..., None])
    img = np.where(veg[..., None], VEGETATION * (1 + 0.05 * tex[..., None]), img)
    channel = _burn([g.buffer(rng.uniform(3, 6)) for g in gullies] + [d.buffer(3) for d in ditches], shape)
    slopes = _burn([g.buffer(12) for g in gullies], shape) & ~channel
    img = np.where(slopes[..., None], img * 0.85, img)  # gully side walls in shade
    img = np.where(channel[..., None], GULLY_FLOOR * (1 + 0.08 * fine[..., None]), img)
    land = _burn(lands, shape)
    rows = 1 + 0.04 * np.sin(xx / 3.0 + yy / 5.0)  # crop rows on the dam land
    img = np.where(land[..., None], DAM_LAND * (1 + 0.02 * fine[..., None]) * rows[..., None], img)
    img = np.where(_burn(walls, shape)[..., None], DAM_WALL, img)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _labelme(name: str, chip: np.ndarray, shapes: list[dict], style: int, jpeg: bytes) -> dict:
    h, w = chip.shape[:2]
    if style == 0:  # Labelme 3.x: no shape_type, colours, the image embedded
        return {
            "version": "3.16.7",
            "flags": {},
            "lineColor": [0, 255, 0, 128],
            "fillColor": [255, 0, 0, 128],
            "shapes": [
                {"label": s["label"], "line_color": None, "fill_color": None, "points": _as_polygon(s)} for s in shapes
            ],
            "imagePath": f"{name}.jpg",
            "imageData": base64.b64encode(jpeg).decode("ascii"),
            "imageHeight": h,
            "imageWidth": w,
        }
    if style == 1:  # Labelme 4.x
        return {
            "version": "4.5.13",
            "flags": {},
            "shapes": [{**s, "group_id": None, "flags": {}} for s in shapes],
            "imagePath": f"{name}.jpg",
            "imageData": None,
            "imageHeight": h,
            "imageWidth": w,
        }
    return {
        "version": "5.2.1",
        "flags": {},
        "shapes": [{**s, "group_id": None, "description": "", "flags": {}} for s in shapes],
        "imagePath": f"D:\\JL1_checkdam\\{LABELME_DIR}\\{name}.jpg",
        "imageData": None,
        "imageHeight": h,
        "imageWidth": w,
    }


def _as_polygon(shape: dict) -> list[list[float]]:
    """Points of a shape as a polygon (Labelme 3.x has no rectangles: its four corners)."""
    if shape["shape_type"] != "rectangle":
        return shape["points"]
    (a, b), (c, d) = shape["points"]
    return [[a, b], [c, b], [c, d], [a, d]]


def _cell_shapes(lands: list[Polygon], rect: list[bool], cell: Polygon, x0: float, y0: float) -> list[dict]:
    shapes = []
    for land, is_rect in zip(lands, rect, strict=True):
        part = land.intersection(cell)
        parts = getattr(part, "geoms", [part])
        for g in parts:
            if not isinstance(g, Polygon) or g.area < 20:
                continue
            g = affinity.translate(g, -x0, -y0)
            if is_rect:
                a, b, c, d = g.bounds
                shapes.append(
                    {
                        "label": "gully",
                        "points": [[round(a, 3), round(b, 3)], [round(c, 3), round(d, 3)]],
                        "shape_type": "rectangle",
                    }
                )
            else:
                pts = [[round(x, 3), round(y, 3)] for x, y in list(g.exterior.coords)[:-1]]
                shapes.append({"label": "gully", "points": pts, "shape_type": "polygon"})
    return shapes


def write_checkdam_replica(
    out_dir: str | os.PathLike[str],
    *,
    size_px: int,
    seed: int,
    chip_px: int = 256,
    resolution_m: float = 0.75,
    epsg: int = 32606,
    origin: tuple[float, float] = (455_000.0, 7_050_000.0),
    quality: int = 95,
) -> pd.DataFrame:
    """Write a check-dam replica in the published layout (see the module doc) into an empty ``out_dir``.

    An earlier replica there is replaced; a folder holding anything else is refused.

    Returns:
        One row per annotated cell: name, row, col, shapes, dam_land_share (of the cell).
    """
    import geopandas as gpd

    if size_px < chip_px:
        raise ParameterError("checkdam_replica_px", f"must be at least one chip ({chip_px}), got {size_px}")
    out_dir = _fresh(Path(out_dir))
    rng = np.random.default_rng([int(seed), 10])
    gullies, ditches = _gullies(rng, size_px)
    pairs = [pair for g in gullies for pair in _dams(rng, g, spacing=260)]
    ditch_pairs = [pair for d in ditches for pair in _dams(rng, d, spacing=300)]
    lands = [shapely.box(*p[0].bounds) for p in ditch_pairs] + [p[0] for p in pairs]  # straight: boxes
    rect = [True] * len(ditch_pairs) + [False] * len(pairs)
    lands_union = shapely.unary_union(lands)
    walls = [p[1] for p in ditch_pairs + pairs]
    image = _paint(rng, size_px, gullies, ditches, lands, walls)
    transform = from_origin(origin[0], origin[1], resolution_m, resolution_m)
    io.write_raster(
        out_dir / CHECKDAM_IMAGE,
        image.transpose(2, 0, 1),
        crs=f"EPSG:{epsg}",
        transform=transform,
        band_names=["red", "green", "blue"],
        tags={"SENSOR": "JL1KF01A PMS02 (replica)", "DATE": "2021-11-11"},
    )
    truth = gpd.GeoDataFrame(
        {"kind": ["dam land"]},
        geometry=[affinity.affine_transform(lands_union, _coeffs(transform))],
        crs=f"EPSG:{epsg}",
    )
    io.write_vector(truth, out_dir / "truth_dam_land.gpkg", "MultiPolygon")
    rows = []
    n = 0
    for r in range(size_px // chip_px):
        for c in range(size_px // chip_px):
            x0, y0 = c * chip_px, r * chip_px
            shapes = _cell_shapes(lands, rect, box(x0, y0, x0 + chip_px, y0 + chip_px), x0, y0)
            if not shapes:
                continue  # no dam land: screened out, never annotated
            name = f"r{r:03d}_c{c:03d}"
            chip = image[y0 : y0 + chip_px, x0 : x0 + chip_px]
            _save_jpeg(out_dir / LABELME_DIR / f"{name}.jpg", chip, quality)
            jpeg = (out_dir / LABELME_DIR / f"{name}.jpg").read_bytes()
            doc = _labelme(name, chip, shapes, n % 3, jpeg)
            io.write_text(out_dir / LABELME_DIR / f"{name}.json", json.dumps(doc, indent=2, ensure_ascii=False))
            share = float(_burn([affinity.translate(lands_union, -x0, -y0)], (chip_px, chip_px)).mean())
            rows.append({"name": name, "row": r, "col": c, "shapes": len(shapes), "dam_land_share": round(share, 6)})
            n += 1
    io.write_text(
        out_dir / "README.txt",
        _CHECKDAM_README.format(size=size_px, res=resolution_m, epsg=epsg, n=n, cells=(size_px // chip_px) ** 2),
    )
    return pd.DataFrame(rows)


def _coeffs(t: Affine) -> list[float]:
    return [t.a, t.b, t.d, t.e, t.c, t.f]


_CHECKDAM_README = """Replica of the Jilin-1 check-dam dataset (lakepaper.datasets.replicas), drawn, not observed.
JL1KF01A_PMS02_20211111_replica.tif  {size} x {size} px, {res} m, EPSG:{epsg}, uint8 RGB
labelme/                            {n} of {cells} grid cells (256 x 256) hold dam land: each as a JPEG
                                    and its Labelme JSON (class "gully")
truth_dam_land.gpkg                 the drawn dam land (not part of the published dataset)
"""
