"""The Jilin-1 check-dam dataset (National Cryosphere Desert Data Center): its published pipeline as code.

What is published (``shared/seeds/checkdam_gully_dataset.txt``): one cloud-free Jilin-1 Wideband
01A PMS-02 image (0.75 m, 2021-11-11, WGS 84 / UTM zone 6N, 548.30 km2), processed in six stages:
(1) cut into 256 x 256 grid cells (3,689); (2) cells without dam land removed by visual
interpretation (584 kept); (3) the kept cells annotated in Labelme, one class "gully"; (4) the
JSON annotations rasterised to binary images with GDAL "to ensure strict spatial coordinate
matching with the original images"; (5) mirror flips, rotations and brightness changes, 584 ->
2,920 samples; (6) a 6:2:2 split into training, validation and test sets. Files: ``*.tif``, ``*.jpg``.

The pipeline here, one function per stage:

1. :func:`grid`: the complete 256 x 256 cells of the large GeoTIFF, row by row, named
   ``r{row:03d}_c{col:03d}``, each with its exact geotransform (a partial strip at the right or
   bottom edge is not a cell).
2. :func:`match` and :func:`screen`: each Labelme JSON annotates one cell; which one is read from
   the annotated image itself, never trusted from a name alone: a georeferenced chip gives its
   offset; a name ``r..._c...`` proposes a cell, accepted only if the chip's pixels are that
   cell's (mean absolute difference <= ``MATCH_TOLERANCE_DN``, JPEG noise allowed); otherwise every
   cell is compared (8 x 8 block means first) and the one matching cell taken. Cells without an
   annotation are screened out.
3. and 4. :func:`write_chips`: each kept cell is read from the large GeoTIFF (not from the lossy
   JPEG the annotators saw) and written as a GeoTIFF with the cell's geotransform; its Labelme
   shapes of class "gully" are taken to map coordinates by that geotransform and burnt on the
   same grid (:func:`lakepaper.datasets.labelme.rasterize`, GDAL's rule), so mask and image
   coincide on the ground, pixel for pixel.
5. :func:`augment`: ``checkdam_augment_factor`` (5) copies of each chip (the original and four
   transformed; :mod:`lakepaper.datasets.augment`), each keeping an exact geotransform.
6. :func:`split`: 6:2:2 **by source cell**: the copies of one cell are always in the same subset.
   The published description does not say whether its split kept copies together; a split of the
   2,920 samples at random would put copies of a training chip into the test set and inflate the
   test scores. Neighbouring cells can still share a gully across their border (spatial
   autocorrelation), which no per-cell split removes.

The published CRS, UTM zone 6N (150-144 W), lies over Alaska, while check dams are a Loess
Plateau practice (zones 48-49 N); the code takes the CRS from the file and assumes nothing.

Errors: everything is read and checked (every JSON, every match) before anything is written.
"""

from __future__ import annotations

import os
import re
import shutil
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely.geometry import box

from lakepaper import io
from lakepaper.datasets import labelme
from lakepaper.datasets.augment import recipe
from lakepaper.datasets.images import rgb
from lakepaper.datasets.split import leaks, split_samples
from lakepaper.errors import InputError, ParameterError
from lakepaper.samples.chips import Chip

RGB_BANDS = ("R", "G", "B")
NAME_RE = re.compile(r"r(\d+)_c(\d+)", re.IGNORECASE)
#: Largest mean absolute difference (8-bit DN) between an annotated chip and its grid cell.
MATCH_TOLERANCE_DN = 6.0
BLOCK = 8  # block size of the coarse content comparison


def cell_name(row: int, col: int) -> str:
    return f"r{row:03d}_c{col:03d}"


# --- the large image ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The published files: the large image and the Labelme JSON files."""

    root: Path
    image: Path
    annotations: tuple[Path, ...]


def locate(root: str | os.PathLike[str], *, min_px: int = 256) -> Source:
    """The large image (the largest georeferenced ``*.tif`` under ``root``) and every ``*.json``.

    Raises:
        InputError: no such folder, no georeferenced TIFF larger than a cell, or no JSON file.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "check-dam dataset folder not found")
    visible = [p for p in sorted(root.rglob("*")) if not any(s.startswith(".") for s in p.relative_to(root).parts)]
    best, best_px = None, 0
    for p in visible:
        if p.suffix.lower() in (".tif", ".tiff") and p.is_file():
            try:
                with rasterio.open(p) as src:
                    px = src.width * src.height if src.crs and min(src.width, src.height) > min_px else 0
            except rasterio.errors.RasterioIOError:
                continue
            if px > best_px:
                best, best_px = p, px
    if best is None:
        raise InputError(root, f"no georeferenced GeoTIFF larger than {min_px} x {min_px} (the large image) here")
    jsons = tuple(p for p in visible if p.suffix.lower() == ".json" and p.is_file())
    if not jsons:
        raise InputError(root, "no Labelme JSON (*.json) annotation here")
    return Source(root, best, jsons)


def rgb_indexes(src: rasterio.io.DatasetReader) -> tuple[int, int, int]:
    """Band indexes (1-based) of red, green, blue: from the colour interpretation, else bands 1-3 of 3."""
    ci = list(src.colorinterp)
    want = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    if all(c in ci for c in want):
        return tuple(ci.index(c) + 1 for c in want)
    if src.count == 3:
        return (1, 2, 3)
    raise InputError(src.name, f"{src.count} bands without red/green/blue colour interpretation: which are RGB?")


def _read_rgb(src, window: Window, bands) -> np.ndarray:
    arr = src.read(list(bands), window=window)
    if arr.dtype != np.uint8:
        raise InputError(src.name, f"expected 8-bit RGB, got {arr.dtype}")
    return arr


# --- 1. grid --------------------------------------------------------------------------------------


def grid(image: str | os.PathLike[str], size: int = 256) -> pd.DataFrame:
    """Step 1: the complete ``size`` x ``size`` cells of the large image, row by row.

    Returns:
        name, row, col, row_off, col_off and the cell's geotransform (``a, b, c, d, e, f``), plus
        ``geometry`` (the cell's outline in the image's CRS, shapely).
    """
    with rasterio.open(image) as src:
        t, h, w = src.transform, src.height, src.width
    rows = []
    for r in range(h // size):
        for c in range(w // size):
            ct = t * Affine.translation(c * size, r * size)
            x0, y0 = ct * (0, 0)
            x1, y1 = ct * (size, size)
            rows.append(
                {
                    "name": cell_name(r, c),
                    "row": r,
                    "col": c,
                    "row_off": r * size,
                    "col_off": c * size,
                    "a": ct.a,
                    "b": ct.b,
                    "c": ct.c,
                    "d": ct.d,
                    "e": ct.e,
                    "f": ct.f,
                    "geometry": box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
                }
            )
    if not rows:
        raise InputError(image, f"image of {w} x {h} holds no complete {size} x {size} cell")
    return pd.DataFrame(rows)


def cell_transform(cell: Mapping[str, Any]) -> Affine:
    return Affine(cell["a"], cell["b"], cell["c"], cell["d"], cell["e"], cell["f"])


# --- 2. match annotations to cells, screen ----------------------------------------------------------


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _blocks(chw: np.ndarray) -> np.ndarray:
    c, h, w = chw.shape
    return chw.reshape(c, h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(2, 4), dtype=np.float32)


def _georeferenced_cell(path: Path, src, size: int) -> tuple[int, int] | None:
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    with rasterio.open(path) as chip:
        if not chip.crs or chip.crs != src.crs or chip.transform.is_identity:
            return None
        col, row = ~src.transform * (chip.transform.c, chip.transform.f)
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6 or round(col) % size or round(row) % size:
        raise InputError(path, f"chip lies at pixel ({col:.3f}, {row:.3f}) of the large image, off the {size} grid")
    return int(round(row)) // size, int(round(col)) // size


def match(
    source: Source, cells: pd.DataFrame, annotations: Sequence[labelme.Annotation], *, size: int = 256
) -> pd.DataFrame:
    """Step 2a: the cell each annotation belongs to (see the module doc for how).

    Returns:
        json (path), cell (name), how (``georeferenced`` | ``name`` | ``content``), mad (DN).

    Raises:
        InputError: naming the JSON: its image is not ``size`` x ``size``, matches no cell or
            several, or two JSON files annotate the same cell.
    """
    by_rc = {(r.row, r.col): r for r in cells.itertuples()}
    fingerprints = None
    out = []
    with rasterio.open(source.image) as src:
        bands = rgb_indexes(src)

        def cell_pixels(r) -> np.ndarray:
            return _read_rgb(src, Window(r.col_off, r.row_off, size, size), bands)

        for ann in annotations:
            chip = rgb(ann.read_image(), ann.path).transpose(2, 0, 1)
            if chip.shape[1:] != (size, size):
                raise InputError(ann.path, f"annotated image is {chip.shape[2]} x {chip.shape[1]}; cells are {size}")
            found, how = None, None
            rc = _georeferenced_cell(ann.image_path, src, size) if ann.image_path else None
            if rc is not None:
                found, how = by_rc.get(rc), "georeferenced"
            if found is None:
                m = NAME_RE.search(Path(ann.image_path_raw.replace("\\", "/")).stem) or NAME_RE.search(ann.path.stem)
                cand = by_rc.get((int(m.group(1)), int(m.group(2)))) if m else None
                if cand is not None and _mad(chip, cell_pixels(cand)) <= MATCH_TOLERANCE_DN:
                    found, how = cand, "name"
            if found is None:
                if fingerprints is None:
                    fingerprints = np.stack([_blocks(cell_pixels(r)) for r in cells.itertuples()])
                d = np.abs(fingerprints - _blocks(chip)[None]).mean(axis=(1, 2, 3))
                near = np.flatnonzero(d <= MATCH_TOLERANCE_DN)
                close = [i for i in near if _mad(chip, cell_pixels(cells.iloc[i])) <= MATCH_TOLERANCE_DN]
                if len(close) > 1:
                    names = ", ".join(cells.name.iloc[i] for i in close[:5])
                    raise InputError(ann.path, f"its image matches several grid cells ({names}): cannot place it")
                if not close:
                    i = int(np.argmin(d))
                    raise InputError(
                        ann.path,
                        f"its image matches no {size} x {size} grid cell of {source.image.name} "
                        f"(closest {cells.name.iloc[i]}, mean block difference {d[i]:.1f} DN)",
                    )
                found, how = next(cells.iloc[[close[0]]].itertuples()), "content"
            out.append({"json": ann.path, "cell": found.name, "how": how, "mad": _mad(chip, cell_pixels(found))})
    table = pd.DataFrame(out, columns=["json", "cell", "how", "mad"])
    dup = table[table.cell.duplicated(keep=False)]
    if len(dup):
        files = ", ".join(Path(p).name for p in dup.json)
        raise InputError(dup.json.iloc[0], f"several JSON files annotate cell {dup.cell.iloc[0]}: {files}")
    return table


def screen(cells: pd.DataFrame, matches: pd.DataFrame) -> pd.DataFrame:
    """Step 2b: the cells with a ``kept`` flag (an annotation of the class) and its JSON."""
    out = cells.merge(matches[["cell", "json"]], left_on="name", right_on="cell", how="left").drop(columns="cell")
    out["kept"] = out.json.notna()
    return out


def read_annotations(source: Source, label: str) -> tuple[list[labelme.Annotation], pd.DataFrame]:
    """Every Labelme file of the source, checked: each must hold an area shape of ``label``.

    Returns:
        (annotations, notes): notes lists JSON files that are not Labelme files (skipped, named)
        and line/point shapes (no area).

    Raises:
        InputError: a Labelme file that is malformed, names a missing image, or has no ``label`` polygon.
    """
    anns, notes = [], []
    search = sorted({p.parent for p in source.root.rglob("*.jpg")} | {source.image.parent})
    for path in source.annotations:
        try:
            ann = labelme.read_labelme(path, search=search)
        except InputError as exc:
            if "not a Labelme file" in exc.problem:
                notes.append({"file": str(path), "note": "not a Labelme file, skipped"})
                continue
            raise
        labelme.class_geometry(ann, label)  # raises with the labels it has
        if ann.skipped:
            notes.append({"file": str(path), "note": f"{len(ann.skipped)} line/point shape(s) without area"})
        anns.append(ann)
    if not anns:
        raise InputError(source.root, "none of the JSON files is a Labelme annotation")
    return anns, pd.DataFrame(notes, columns=["file", "note"])


# --- 3./4. chips and masks ---------------------------------------------------------------------------


def write_chips(
    source: Source,
    kept: pd.DataFrame,
    annotations: Mapping[str, labelme.Annotation],
    out_dir: str | os.PathLike[str],
    *,
    label: str,
    size: int = 256,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Steps 3-4: each kept cell as ``chips/<cell>_image.tif`` and ``chips/<cell>_mask.tif``.

    Returns:
        (chips, polygons): chips has name, image, mask (paths relative to ``out_dir``),
        gully_share; polygons has cell and the class geometry in map coordinates (shapely).
    """
    out_dir = Path(out_dir)
    rows, polys = [], []
    with rasterio.open(source.image) as src:
        bands, crs = rgb_indexes(src), src.crs
        for cell in kept.itertuples():
            t = cell_transform(cell._asdict())
            image = _read_rgb(src, Window(cell.col_off, cell.row_off, size, size), bands)
            mask, geom = labelme.rasterize(annotations[str(cell.json)], label, transform=t)
            image_rel, mask_rel = f"chips/{cell.name}_image.tif", f"chips/{cell.name}_mask.tif"
            tags = {"CELL": cell.name, "SOURCE": source.image.name}
            io.write_raster(out_dir / image_rel, image, crs=crs, transform=t, band_names=list(RGB_BANDS), tags=tags)
            io.write_raster(out_dir / mask_rel, mask, crs=crs, transform=t, band_names=[label], tags=tags)
            rows.append({"name": cell.name, "image": image_rel, "mask": mask_rel, "gully_share": float(mask.mean())})
            polys.append({"cell": cell.name, "json": Path(cell.json).name, "geometry": geom})
    return pd.DataFrame(rows), pd.DataFrame(polys)


# --- 5. augmentation --------------------------------------------------------------------------------


def augment(
    chips: pd.DataFrame,
    folder: str | os.PathLike[str],
    *,
    factor: int,
    kinds: Sequence[str],
    brightness_range: tuple[float, float],
    seed: int,
    progress: bool = False,
) -> pd.DataFrame:
    """Step 5: ``factor`` copies of every chip in ``augmented/`` (the original is copy 0).

    Returns:
        One row per sample: name (``<cell>_a<k>``), source (the cell), copy_no (0: the original), op, brightness,
        image, mask (relative paths), gully_share.
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    rows = []
    for chip in tqdm(list(chips.itertuples()), desc="augment", disable=not progress):
        image, meta = io.read_raster(folder / chip.image)
        mask, _ = io.read_raster(folder / chip.mask)
        rng = np.random.default_rng([int(seed), 10, zlib.crc32(chip.name.encode())])
        for k, aug in enumerate(recipe(factor, kinds, rng, brightness_range=brightness_range)):
            im, mk, t = aug.apply(image, mask[0], meta["transform"])
            name = f"{chip.name}_a{k}"
            image_rel, mask_rel = f"augmented/{name}_image.tif", f"augmented/{name}_mask.tif"
            tags = {"SOURCE_CELL": chip.name, "AUGMENTATION": aug.name}
            io.write_raster(folder / image_rel, im, crs=meta["crs"], transform=t, band_names=list(RGB_BANDS), tags=tags)
            io.write_raster(folder / mask_rel, mk, crs=meta["crs"], transform=t, band_names=["gully"], tags=tags)
            rows.append(
                {
                    "name": name,
                    "source": chip.name,
                    "copy_no": k,
                    "op": aug.op,
                    "brightness": aug.factor,
                    "image": image_rel,
                    "mask": mask_rel,
                    "gully_share": float(mk.mean()),
                }
            )
    return pd.DataFrame(rows)


# --- 6. split -------------------------------------------------------------------------------------------


def split(samples: pd.DataFrame, fractions: Sequence[float], seed: int) -> pd.DataFrame:
    """Step 6: the samples with a ``split`` column, 6:2:2 of the source cells (copies together)."""
    out = samples.copy()
    out["split"] = split_samples(out, fractions, seed, group="source")
    bad = leaks(out, group="source")
    if bad:  # cannot happen by construction; checked because it is the point of this split
        raise ParameterError("split", f"source cells in two subsets: {bad[:5]}")
    return out


def split_counts(samples: pd.DataFrame) -> pd.DataFrame:
    """Samples and source cells per subset (train, val, test) of :func:`split`'s table."""
    table = samples.groupby("split").agg(samples=("name", "size"), source_cells=("source", "nunique"))
    return table.loc[["train", "val", "test"]]


def load_chips(folder: str | os.PathLike[str], samples: pd.DataFrame, subset: str, *, resolution_m: float = 0.75):
    """The samples of one subset as U-Net chips: image float32 (3, rows, cols) 0..1 (R, G, B), label 0/1."""
    folder = Path(folder)
    chips = []
    for s in samples[samples.split == subset].itertuples():
        image, _ = io.read_raster(folder / s.image)
        mask, _ = io.read_raster(folder / s.mask)
        area = image.shape[1] * image.shape[2] * resolution_m**2 / 1e6
        chips.append(
            Chip(s.name, "gully", subset, area, image.astype(np.float32) / 255.0, mask[0].astype(np.uint8), RGB_BANDS)
        )
    return chips


# --- the whole pipeline -----------------------------------------------------------------------------


def build(root: str | os.PathLike[str], out_dir: str | os.PathLike[str], p: Mapping[str, Any], *, progress=False):
    """Steps 1-6 from the published files in ``root`` into ``out_dir``.

    Writes ``grid.gpkg`` (every cell, ``kept`` flag), ``annotations.gpkg`` (the class polygons in
    map coordinates), ``chips/``, ``augmented/`` and ``samples.csv`` (one row per sample, its split).

    Returns:
        dict: source, grid, matches, notes, chips, samples (DataFrames), counts.

    Raises:
        InputError: a bad file, named, before anything is written.
    """
    import geopandas as gpd

    size, label = int(p["checkdam_chip_px"]), str(p["checkdam_class"])
    source = locate(root, min_px=size)
    cells = grid(source.image, size)
    anns, notes = read_annotations(source, label)
    matches = match(source, cells, anns, size=size)
    screened = screen(cells, matches)
    kept = screened[screened.kept]
    by_path = {str(a.path): a for a in anns}
    out_dir = Path(out_dir)
    for folder in ("chips", "augmented"):  # ours: a rerun must not keep the files of an earlier one
        shutil.rmtree(out_dir / folder, ignore_errors=True)
    with rasterio.open(source.image) as src:
        crs = src.crs
    chips, polys = write_chips(source, kept, by_path, out_dir, label=label, size=size)
    samples = augment(
        chips,
        out_dir,
        factor=int(p["checkdam_augment_factor"]),
        kinds=p["checkdam_augmentations"],
        brightness_range=tuple(p["checkdam_brightness_range"]),
        seed=int(p["checkdam_split_seed"]),
        progress=progress,
    )
    samples = split(samples, p["checkdam_split_fractions"], int(p["checkdam_split_seed"]))
    g = gpd.GeoDataFrame(screened.drop(columns=["json"]).assign(json=screened.json.map(_name)), crs=crs)
    io.write_vector(g, out_dir / "grid.gpkg", "Polygon")
    io.write_vector(gpd.GeoDataFrame(polys, crs=crs), out_dir / "annotations.gpkg", "MultiPolygon")
    with io.atomic_path(out_dir / "samples.csv") as tmp:
        samples.to_csv(tmp, index=False)
    counts = {
        "cells": len(cells),
        "kept": int(screened.kept.sum()),
        "samples": len(samples),
        **{f"samples_{s}": int((samples.split == s).sum()) for s in ("train", "val", "test")},
    }
    return {
        "source": source,
        "grid": screened,
        "matches": matches,
        "notes": notes,
        "chips": chips,
        "samples": samples,
        "counts": counts,
    }


def _name(p) -> str | None:
    return None if pd.isna(p) else Path(p).name


def read_samples(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """``samples.csv`` of a built folder."""
    path = Path(folder) / "samples.csv"
    if not path.exists():
        raise InputError(path, "no samples table: run checkdam.build first")
    return pd.read_csv(path)
