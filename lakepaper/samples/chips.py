"""The training set on disk: one image chip and one label chip per sample region, and a table.

Layout of ``build/<profile>/02_samples/`` (written by :func:`lakepaper.samples.stage.build_samples`)::

    regions.gpkg                 one row per region (EPSG:4326 outline): region_id, tile,
                                 region_type, biome, area_km2, height, width, split,
                                 threshold, image, label (paths relative to the folder), ...
    chips/<region_id>_image.tif  float32, bands B2, B3, B4, B11, NDWI (``BANDS``): reflectance
                                 0..1 and NDWI -1..1, on the composite's 10 m grid, no NaN
    chips/<region_id>_label.tif  uint8, 1 = lake, 0 = not lake, 255 = no clear observation in the
                                 composite (``LABEL_NODATA``: the image chip holds the region's
                                 median there; training and scoring leave these pixels out)

Example:
    >>> chips = read_training_set("build/demo/02_samples", split="train")  # doctest: +SKIP
    >>> chips[0].image.shape, chips[0].label.dtype  # doctest: +SKIP
    ((5, 168, 216), dtype('uint8'))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import Affine

from lakepaper import io
from lakepaper.errors import InputError, ParameterError

#: Band order of the image chips, the same as the composite's (``params.composite_bands``).
BANDS = ("B2", "B3", "B4", "B11", "NDWI")
SPLITS = ("train", "val", "test")
REGIONS_FILE = "regions.gpkg"
#: Label value of pixels the composite never saw clear: neither lake nor land, left out of the loss and the scores.
LABEL_NODATA = 255


@dataclass(frozen=True)
class Chip:
    """One labelled sample region."""

    region_id: str
    region_type: str
    split: str
    area_km2: float
    image: np.ndarray  # (bands, rows, cols) float32
    label: np.ndarray  # (rows, cols) uint8, 0/1
    bands: tuple[str, ...] = BANDS
    observed: np.ndarray | None = None  # (rows, cols) bool: False where the label file says LABEL_NODATA; None: all


def chip_paths(region_id: str) -> tuple[str, str]:
    """Image and label chip paths of a region, relative to the samples folder."""
    return f"chips/{region_id}_image.tif", f"chips/{region_id}_label.tif"


def write_chip(
    folder: str | os.PathLike[str],
    region_id: str,
    image: np.ndarray,
    label: np.ndarray,
    *,
    crs: CRS,
    transform: Affine,
    bands: tuple[str, ...] = BANDS,
    tags: dict | None = None,
) -> tuple[str, str]:
    """Write a region's image and label chips (atomically); return their relative paths.

    Raises:
        InputError: the image holds NaN, the label holds values other than 0, 1 and ``LABEL_NODATA``,
            or the shapes differ.
    """
    image_rel, label_rel = chip_paths(region_id)
    folder = Path(folder)
    _check(folder / image_rel, image, label, bands)
    tags = {"REGION_ID": region_id, **(tags or {})}
    io.write_raster(
        folder / image_rel, image.astype(np.float32), crs=crs, transform=transform, band_names=list(bands), tags=tags
    )
    io.write_raster(
        folder / label_rel,
        label.astype(np.uint8)[None],
        crs=crs,
        transform=transform,
        nodata=LABEL_NODATA,
        band_names=["lake"],
        tags=tags,
    )
    return image_rel, label_rel


def _check(path: Path, image: np.ndarray, label: np.ndarray, bands: tuple[str, ...]) -> None:
    if image.ndim != 3 or image.shape[0] != len(bands):
        raise InputError(path, f"image has shape {image.shape}, expected ({len(bands)}, rows, cols) for {bands}")
    if label.shape != image.shape[1:]:
        raise InputError(path, f"label shape {label.shape} differs from the image's {image.shape[1:]}")
    if not np.isfinite(image).all():
        raise InputError(path, f"image holds {int((~np.isfinite(image)).sum())} NaN/inf values")
    values = np.unique(label)
    if not set(values.tolist()) <= {0, 1, LABEL_NODATA}:
        raise InputError(
            path, f"label is not binary: values {values[:10].tolist()} (0, 1, and {LABEL_NODATA} for no observation)"
        )


def read_chip(folder: str | os.PathLike[str], row) -> Chip:
    """Read the chips of one row of the regions table.

    Raises:
        InputError: a chip is missing, holds NaN, is not binary, or its bands differ from ``BANDS``.
    """
    folder = Path(folder)
    image, meta = io.read_raster(folder / row.image)
    label, _ = io.read_raster(folder / row.label)
    bands = tuple(meta["band_names"])
    _check(folder / row.image, image, label[0], bands)
    unseen = label[0] == LABEL_NODATA
    return Chip(
        region_id=row.region_id,
        region_type=row.region_type,
        split=row.split,
        area_km2=float(row.area_km2),
        image=image.astype(np.float32),
        label=(label[0] == 1).astype(np.uint8),
        bands=bands,
        observed=~unseen if unseen.any() else None,
    )


def read_regions(folder: str | os.PathLike[str]):
    """The regions table of a samples folder (a GeoDataFrame)."""
    import geopandas as gpd

    path = Path(folder) / REGIONS_FILE
    if not path.exists():
        raise InputError(path, "no regions table here: run the 02_samples stage first")
    return gpd.read_file(path)


def read_training_set(folder: str | os.PathLike[str], split: str | None = None) -> list[Chip]:
    """Every chip of a samples folder, or those of one split (``train``, ``val``, ``test``)."""
    if split is not None and split not in SPLITS:
        raise ParameterError("split", f"expected one of {SPLITS}, got {split!r}")
    regions = read_regions(folder)
    if split is not None:
        regions = regions[regions.split == split]
    return [read_chip(folder, row) for row in regions.itertuples()]
