"""Image files of the datasets (JPEG, PNG, BMP, TIFF), read whole or refused with the reason.

A truncated JPEG or PNG decodes partly in many viewers (the rest grey); here it is an error, so a
damaged download can never pass as an image with a grey band. TIFFs that Pillow cannot read
(multi-band, 16-bit, GeoTIFF tiling) are read with rasterio.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from lakepaper.errors import InputError

#: File suffixes taken as images (lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def is_image(path: str | os.PathLike[str]) -> bool:
    """Whether a file name has an image suffix (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_pixels(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """Decode an image completely.

    Returns:
        (pixels, mode): ``(rows, cols)`` for one band or ``(rows, cols, bands)``, and the
        Pillow mode (``RGB``, ``L``, ``P`` converted to ``RGB``, ...), or ``"GDAL"`` for a TIFF
        read with rasterio.

    Raises:
        InputError: missing, not an image, or truncated/corrupt (naming the file).
    """
    from PIL import Image, ImageFile, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "image file not found")
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone switched Pillow to lenient decoding: refuse to read silently
        raise InputError(p, "Pillow is set to LOAD_TRUNCATED_IMAGES; truncated files would pass unnoticed")
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode == "P":  # palette ground truths (Labelme's label.png): colours from the palette
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
        return arr, mode
    except UnidentifiedImageError as exc:
        if p.suffix.lower() in (".tif", ".tiff"):
            return _read_tiff(p), "GDAL"
        raise InputError(p, f"not an image Pillow can read ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated / corrupt streams
        if p.suffix.lower() in (".tif", ".tiff") and "truncated" not in str(exc).lower():
            return _read_tiff(p), "GDAL"
        raise InputError(p, f"image is truncated or corrupt ({exc})") from exc


def _read_tiff(p: Path) -> np.ndarray:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(p) as src:
                arr = src.read()
    except RasterioIOError as exc:
        raise InputError(p, f"TIFF is truncated or corrupt ({exc})") from exc
    return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)


def rgb(pixels: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
    """The three colour channels of decoded pixels as ``(rows, cols, 3)`` uint8.

    An alpha channel is dropped only where it is fully opaque.

    Raises:
        InputError: one band, two bands, a transparent alpha, or values outside 8 bits.
    """
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        shape = pixels.shape if pixels.ndim == 3 else (*pixels.shape, 1)
        raise InputError(path, f"expected an RGB image, got {shape[2]} band(s) of shape {pixels.shape}")
    if pixels.shape[2] == 4:
        alpha = pixels[..., 3]
        if alpha.dtype == np.uint8 and (alpha != 255).any():
            raise InputError(path, f"RGBA image with {int((alpha != 255).sum())} transparent pixels")
        pixels = pixels[..., :3]
    if pixels.dtype != np.uint8:
        if pixels.min() < 0 or pixels.max() > 255:
            raise InputError(path, f"expected 8-bit colours, got {pixels.dtype} from {pixels.min()} to {pixels.max()}")
        pixels = pixels.astype(np.uint8)
    return np.ascontiguousarray(pixels)
