"""Seamless sliding-window prediction of one tile, strip by strip, into two Cloud-Optimised GeoTIFFs.

The tile is read one strip of windows at a time (``size`` rows plus what the reflection padding
needs), the windows of the strip go through the model ``batch`` at a time, and the kept centres
are written into the outputs as they come. Peak memory is therefore about two strips (bands x size
x tile width: the padded one the windows are cut from, and the rows kept for the next strip) plus one
batch of windows, whatever the tile's height (:mod:`.windows` explains the geometry).

The strip loop runs one of two ways (``pipeline``), with byte-identical outputs:

* ``sequential``: read and pad a strip, run its windows through the model, stitch and write it, then
  the next strip;
* ``overlapped``: reader threads read, pad and batch the next strips (GDAL releases the GIL) while
  the model runs on this one, and a writer thread stitches and writes the finished strips; at most
  ``DEPTH`` strips wait at either end, so memory stays bounded by the strip. On CUDA the readers
  stack the windows straight into pinned host buffers of the model call
  (:func:`lakepaper.predict.model.make_forward`), which copies them without blocking, so the GPU
  is fed while the CPU threads read and write;
* ``auto`` (the default): ``AUTO_PIPELINE`` per device of the model call (its ``device``
  attribute; a plain function counts as CPU). On the 2-core AVX-512 CPU of the README the threads
  take their time from the convolutions (``benchmarks/predict.py --pipeline both``, demo profile,
  3072 px tile, bf16, the precision ``auto`` picks there: overlapped ran at 0.92-1.06 of the
  sequential throughput, medians of three pairs 0.98-1.04; before the row reuse and uncompressed
  strips, 0.94-0.95; in fp32 0.80-1.23), so CPU stays sequential, the simpler loop; with a GPU the
  CPU cores would otherwise wait for it, so CUDA overlaps.

Either way a strip takes the rows it shares with the previous one (``2 x edge``) from that strip
rather than decoding them again, the strips go to uncompressed GeoTIFFs, and the two COGs are laid
out and compressed at once at the end.

Input: :meth:`InputTile.open` finds the model's bands in the file, chooses how its values become
reflectance (``--scale``/``--offset``, else GDAL scales/offsets, else the ``SCALE`` tag, else Sentinel-2
L2A metadata: the processing-baseline offset), stops on a sample that is evidently not reflectance, and
every read error, there or in the strip loop, becomes one :class:`~lakepaper.errors.InputError` naming
the file and the rows.

Outputs, on the input's grid (CRS, transform, size):

* ``<name>_prob.tif``: uint8 lake probability x ``PROB_SCALE`` (0..250; tag ``SCALE``), 255 no data;
* ``<name>_mask.tif``: uint8 1 lake (probability > ``threshold``), 0 not lake, 255 no data.

No data propagates from the input: a pixel without a valid value in every band is 255 in both
(the model sees 0 there, and its neighbours see that 0 as context). Both files are written to
temporary names and renamed into place last, so a killed run leaves no tile that looks finished.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.windows import Window

from lakepaper.errors import InputError, ParameterError
from lakepaper.io import atomic_path
from lakepaper.perturb import INDEX_BANDS, REFLECTANCE_BANDS
from lakepaper.predict import windows

PROB_SCALE = 250
NODATA = 255
#: Creation options of the outputs: Cloud-Optimised GeoTIFF, deflate (uint8 masks compress well).
COG_OPTIONS = {"driver": "COG", "compress": "DEFLATE", "blocksize": 512, "overview_resampling": "nearest"}

#: A model call: float32 (batch, bands, size, size) -> lake probability (batch, size, size) in 0..1.
Forward = Callable[[np.ndarray], np.ndarray]
PIPELINES = ("auto", "sequential", "overlapped")
#: What ``pipeline="auto"`` runs, by the model call's device type (anything not listed: ``overlapped``).
AUTO_PIPELINE = {"cpu": "sequential", "cuda": "overlapped"}
#: Strips read ahead of the model, and finished strips waiting for the writer, at most (overlapped loop).
DEPTH = 2


#: What files call Sentinel-2 bands (Earth Search asset keys, STAC common names) -> this package's names;
#: zero-padded ids (``B03``) and GDAL's descriptions (``B3, central wavelength 560 nm``) are read too.
COMMON_NAMES = {
    "coastal": "B1",
    "blue": "B2",
    "green": "B3",
    "red": "B4",
    "rededge1": "B5",
    "rededge2": "B6",
    "rededge3": "B7",
    "nir": "B8",
    "nir08": "B8A",
    "nir09": "B9",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
}
#: Band names that a file's description can give: ``--bands`` may not call such a band something else.
KNOWN_BANDS = frozenset((*REFLECTANCE_BANDS, "B10", *INDEX_BANDS, "SCL"))
#: Sentinel-2 L2A: reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE (ESA), DN 0 no data.
L2A_QUANTIFICATION = 10000.0
#: ESA's BOA_ADD_OFFSET of every band from processing baseline 04.00 (products from 2022-01-25 on), in DN.
L2A_BASELINE_OFFSET = -1000.0
#: Tag names (any case, after any ``prefix:``) that mark a file as a Sentinel-2 L2A product.
L2A_TAGS = ("PROCESSING_BASELINE", "BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET")
#: The value-range check: a band whose scaled sample has a median above the first value, or a 99th
#: percentile above the second, is not reflectance (real images: about -0.2..1.5; NDWI -1..1).
RANGE_LIMITS = (2.0, 5.0)
#: The sample of the check where the file has no overview: SAMPLE_WINDOWS runs of SAMPLE_ROWS rows spread
#: over the tile, each at most SAMPLE_COLS columns wide (its centre): a few blocks, not the file.
SAMPLE_ROWS, SAMPLE_WINDOWS, SAMPLE_COLS = 32, 3, 1024


def band_name(text: str) -> str:
    """A band's name as this package spells it (``B3``, ``B8A``, ``NDWI``).

    ``B03``, ``b3``, ``green`` (:data:`COMMON_NAMES`) and GDAL's ``B3, central wavelength 560 nm`` are all
    ``B3``; a name it does not know comes back stripped and upper-cased.
    """
    word = str(text).split(",")[0].strip()
    low = word.lower()
    if low in COMMON_NAMES:
        return COMMON_NAMES[low]
    m = re.fullmatch(r"b0?(\d{1,2})(a?)", low)
    if m:
        return f"B{m.group(1)}{m.group(2).upper()}"
    return word.upper()


def _normalised(tags: dict) -> dict[str, str]:
    """Tags keyed without any ``prefix:`` and upper-cased (``s2:processing_baseline`` -> ``PROCESSING_BASELINE``).

    GDAL splits a metadata item at its first ``:`` or ``=``, so a tag written as ``s2:processing_baseline=05.10``
    reads back as ``s2`` = ``processing_baseline=05.10``: such a value counts under its own name as well.
    """
    out = {}
    for key, value in tags.items():
        out[key.rsplit(":", 1)[-1].upper()] = str(value)
        name, eq, rest = str(value).partition("=")
        if eq and re.fullmatch(r"[\w:]+", name):
            out.setdefault(name.rsplit(":", 1)[-1].upper(), rest)
    return out


def _number(path: Path, what: str, text: object) -> float:
    try:
        return float(text)
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"{what} {text!r} is not a number") from exc


def _baseline(path: Path, text: str) -> float:
    """A processing baseline as a number: ``04.00``, ``4.0`` and ``N0400`` (the SAFE name's) are all 4.0."""
    s = text.strip().upper().removeprefix("N")
    try:
        return float(f"{s[:2]}.{s[2:]}") if re.fullmatch(r"\d{4}", s) else float(s)
    except ValueError as exc:
        raise InputError(
            path,
            f"PROCESSING_BASELINE {text!r} is not a baseline number: pass --scale 10000 and --offset "
            "(-1000 for processing baseline 04.00 and later, 0 before)",
        ) from exc


def _read_failure(path: Path, rows: str, exc: Exception) -> InputError:
    """One line for a failed read: the file, the rows, GDAL's innermost reason (less libtiff's own block
    coordinates, which are not the tile's)."""
    reason, cause = str(exc), exc
    while cause is not None:
        reason = str(cause) or reason
        cause = cause.__cause__ or cause.__context__
    reason = re.sub(r" at row \d+, col \d+, tile \d+;?", "", reason)
    return InputError(path, f"{rows} could not be read ({reason}): the file is truncated or corrupt")


@dataclass(frozen=True)
class _Scaling:
    """value = (raw + offset) / scale, per band; ``rule``: which rule chose them; ``nodata``: the raw no-data value."""

    scale: tuple[float, ...]
    offset: tuple[float, ...]
    rule: str
    nodata: float | None


def _l2a_tags(src, indexes: list[int]) -> tuple[dict[str, str], list[dict[str, str]]] | None:
    """The dataset's and the bands' tags (:func:`_normalised`) of an integer file tagged as a Sentinel-2 L2A
    product (:data:`L2A_TAGS`); None for any other file."""
    if np.dtype(src.dtypes[indexes[0] - 1]).kind not in "iu":
        return None
    meta = _normalised(src.tags())
    per_band = [_normalised(src.tags(i)) for i in indexes]
    if not any(k.startswith(L2A_TAGS) for m in (meta, *per_band) for k in m):
        return None
    return meta, per_band


def _l2a_offsets(
    path: Path, meta: dict[str, str], per_band: list[dict[str, str]], names: list[str]
) -> tuple[float, list[float]]:
    """(quantification value, offset per band in DN) of a file tagged as a Sentinel-2 L2A product (rule 4)."""
    quant = _number(path, "BOA_QUANTIFICATION_VALUE", meta.get("BOA_QUANTIFICATION_VALUE", L2A_QUANTIFICATION))
    if not quant > 0:
        raise InputError(path, f"BOA_QUANTIFICATION_VALUE {quant:g} must be positive")
    applied = meta.get("BOA_OFFSET_APPLIED", "").strip().lower() in ("true", "1", "yes")
    baseline = _baseline(path, meta["PROCESSING_BASELINE"]) if "PROCESSING_BASELINE" in meta else None
    offsets = []
    for name, band_meta in zip(names, per_band, strict=True):
        named = [v for k, v in meta.items() if k.startswith("BOA_ADD_OFFSET_") and band_name(k[15:]) == name]
        if applied or name in INDEX_BANDS:
            offsets.append(0.0)
        elif "BOA_ADD_OFFSET" in band_meta:
            offsets.append(_number(path, f"BOA_ADD_OFFSET of band {name}", band_meta["BOA_ADD_OFFSET"]))
        elif named:
            offsets.append(_number(path, f"BOA_ADD_OFFSET_{name}", named[0]))
        elif "BOA_ADD_OFFSET" in meta:
            offsets.append(_number(path, "BOA_ADD_OFFSET", meta["BOA_ADD_OFFSET"]))
        else:
            offsets.append(L2A_BASELINE_OFFSET if baseline is not None and baseline >= 4.0 else 0.0)
    return quant, offsets


def _scaling(
    path: Path, src, indexes: list[int], names: list[str], scale: float | None, offset: float | None
) -> _Scaling:
    """How the raw values of the bands ``indexes`` (named ``names``) become reflectance: see :class:`InputTile`."""
    l2a_tags = _l2a_tags(src, indexes)
    n, nodata = len(indexes), src.nodata
    if nodata is None and l2a_tags is not None:
        nodata = 0  # ESA's no data, whichever rule scales the values
    shifted = [b not in INDEX_BANDS for b in names]  # an index (a ratio) carries no DN offset
    if scale is not None:
        if not scale > 0:
            raise ParameterError("scale", f"must be positive, got {scale}")
        off = 0.0 if offset is None else float(offset)
        rule = f"--scale {scale:g}" + (f" --offset {off:g}" if offset is not None else "")
        return _Scaling((float(scale),) * n, tuple(off if s else 0.0 for s in shifted), rule, nodata)
    if offset is not None:
        raise ParameterError("offset", "goes with --scale (the divisor of the values it shifts): pass both")
    gains = [float(src.scales[i - 1]) for i in indexes]
    adds = [float(src.offsets[i - 1]) for i in indexes]
    if any(g != 1.0 or a != 0.0 for g, a in zip(gains, adds, strict=True)):
        if not all(g != 0.0 and np.isfinite(g) and np.isfinite(a) for g, a in zip(gains, adds, strict=True)):
            raise InputError(path, f"GDAL band scales {gains} / offsets {adds} cannot be undone")
        rule = "GDAL scales " + ", ".join(f"{b} x{g:g}{a:+g}" for b, g, a in zip(names, gains, adds, strict=True))
        return _Scaling(
            tuple(1.0 / g for g in gains), tuple(a / g for g, a in zip(gains, adds, strict=True)), rule, nodata
        )
    tags = src.tags()
    l2a = None if l2a_tags is None else _l2a_offsets(path, *l2a_tags, names)
    if "SCALE" in tags:
        value = _number(path, "SCALE tag", tags["SCALE"])
        if not value > 0:
            raise ParameterError("scale", f"must be positive, got {value} (the SCALE tag of {path})")
        if l2a is not None and any(l2a[1]):
            raise InputError(
                path,
                f"has a SCALE tag ({tags['SCALE']}) and Sentinel-2 L2A offset metadata (BOA_ADD_OFFSET "
                f"{min(l2a[1]):g}): say which applies, --scale {value:g} --offset {min(l2a[1]):g}, or --scale "
                f"{value:g} --offset 0 if the values were already shifted back",
            )
        return _Scaling((value,) * n, (0.0,) * n, f"SCALE tag {value:g}", nodata)
    if l2a is not None:
        quant, offsets = l2a
        rule = f"Sentinel-2 L2A metadata: (DN + offset) / {quant:g}, offsets " + ", ".join(
            f"{b} {o:g}" for b, o in zip(names, offsets, strict=True)
        )
        return _Scaling((quant,) * n, tuple(offsets), rule, nodata)
    return _Scaling((1.0,) * n, (0.0,) * n, "none: values taken as they are", nodata)


@dataclass
class InputTile:
    """A GeoTIFF to predict: which of its bands feed the model, and how its values become reflectance.

    Band order: the model's ``bands`` are looked up by the file's band descriptions when it has them
    (a lakepaper composite does; ``B03``, ``green`` and GDAL's ``B3, central wavelength 560 nm`` all
    name ``B3``: :func:`band_name`); otherwise the file's first bands are taken in the order
    ``file_bands`` (``--bands``) gives. ``file_bands`` that contradict the descriptions (a band
    described as a known Sentinel-2 band or index, named another) are refused.

    Scaling: every band's value is ``(raw + offset) / scale``; the first rule that applies sets them:

    1. ``scale`` given (``--scale``), with ``offset`` (``--offset``, in the file's units, default 0);
    2. the file's GDAL band scales/offsets (``src.scales``/``src.offsets``) when any of the model's
       bands has one other than 1/0: value = raw x scale + offset, GDAL's own rule;
    3. the file's ``SCALE`` tag (stage-01 composites: 1000), offset 0;
    4. an integer file tagged as a Sentinel-2 L2A product (tags ``PROCESSING_BASELINE``,
       ``BOA_QUANTIFICATION_VALUE`` or ``BOA_ADD_OFFSET...``, in any case, after any ``prefix:`` such
       as STAC's ``s2:``): ESA's (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE. The offset of a
       band is its band tag ``BOA_ADD_OFFSET``, else the dataset tag ``BOA_ADD_OFFSET_<band>``
       (Earth Engine's ``BOA_ADD_OFFSET_B3``; ``B03`` too), else ``BOA_ADD_OFFSET``, else -1000 where
       ``PROCESSING_BASELINE`` >= 04.00 (products from 2022-01-25 on), else 0; a tag
       ``BOA_OFFSET_APPLIED`` true (Earth Search's ``earthsearch:boa_offset_applied``: the values were
       already shifted back) makes it 0. The quantification value is 10000 unless tagged;
    5. else the values are taken as they are.

    An offset (rules 1 and 4) is never added to an index band (NDWI: a ratio has no DN offset). A
    ``SCALE`` tag beside a non-zero L2A offset is ambiguous and refused (pass ``--scale`` and
    ``--offset``). In a file tagged as L2A that declares no no-data value, DN 0 is no data (ESA's
    convention), whichever rule scales it. A file whose values were shifted back but kept the tags
    without saying so (Earth Engine's ``S2_SR_HARMONIZED`` exports) needs ``--scale 10000 --offset 0``.

    Value-range check: :meth:`open` reads a sample (the coarsest overview, else a few runs of rows)
    and stops at a band whose scaled values are evidently not reflectance (median above 2 or 99th
    percentile above 5, :data:`RANGE_LIMITS`): an int16 x 10000 file read without ``--scale 10000``.

    Read errors (a file truncated or corrupt past its header) become one :class:`InputError` naming
    the file and the rows that could not be read, here and in :func:`predict_tile`'s strip loop.
    """

    path: Path
    bands: tuple[str, ...]
    indexes: list[int]
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    nodata: float | None
    profile: dict
    scaling: str = ""

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        bands: Sequence[str],
        *,
        scale: float | None = None,
        offset: float | None = None,
        file_bands: Sequence[str] | None = None,
    ) -> InputTile:
        """Open ``path`` for the model's ``bands``: find them, choose the scaling, check a sample's values.

        Args:
            path: the GeoTIFF.
            bands: the model's band order (the checkpoint's).
            scale: divide the values by this (rule 1 above); None: the file's metadata decides.
            offset: with ``scale``: add this (the file's units) before dividing, to every band but an index.
            file_bands: names of the file's bands in order, for a file without band descriptions.

        Raises:
            InputError: missing or unreadable file, unnamed or missing bands, ambiguous or unusable scaling
                metadata, values that are evidently not reflectance, rows that cannot be read.
            ParameterError: a non-positive ``scale``, ``offset`` without ``scale``, ``file_bands`` that
                contradict the file's band descriptions.
        """
        path = Path(path)
        if not path.exists():
            raise InputError(path, "input tile not found")
        try:
            src = rasterio.open(path)
        except RasterioIOError as exc:
            raise InputError(path, f"not a readable GeoTIFF ({exc})") from exc
        with src:
            profile, desc = dict(src.profile), list(src.descriptions)
            names = _band_names(path, desc, file_bands, profile["count"], bands)
            indexes = [names.index(band_name(b)) + 1 for b in bands]
            how = _scaling(path, src, indexes, [band_name(b) for b in bands], scale, offset)
            tile = cls(path, tuple(bands), indexes, how.scale, how.offset, how.nodata, profile, how.rule)
            tile.check_range(src)
        return tile

    @property
    def shape(self) -> tuple[int, int]:
        return self.profile["height"], self.profile["width"]

    def reader(self) -> rasterio.io.DatasetReader:
        """The file opened for reading (an :class:`InputError` if it no longer opens)."""
        try:
            return rasterio.open(self.path)
        except RasterioIOError as exc:
            raise InputError(self.path, f"not a readable GeoTIFF ({exc})") from exc

    def _values(self, raw: np.ndarray, fill: float = np.nan) -> tuple[np.ndarray, np.ndarray]:
        """Raw values (bands, ...) -> float32 scaled values (``fill`` where no data) and the valid mask."""
        data = raw.astype(np.float32)
        if any(self.offset):
            data += np.asarray(self.offset, np.float32).reshape(-1, *[1] * (raw.ndim - 1))
        data /= np.asarray(self.scale, np.float32).reshape(-1, *[1] * (raw.ndim - 1))
        bad = ~np.isfinite(data)
        if self.nodata is not None and not np.isnan(self.nodata):
            bad |= raw == self.nodata
        valid = ~bad.any(axis=0)
        data[:, ~valid] = fill
        return data, valid

    def read_rows(
        self, src: rasterio.io.DatasetReader, r0: int, r1: int, fill: float = np.nan
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``r0..r1`` (clipped to the tile): float32 values (``fill`` where no data) and the valid mask.

        Raises:
            InputError: the rows could not be read (the file is truncated or corrupt there).
        """
        win = Window(0, r0, self.shape[1], r1 - r0)
        try:
            raw = src.read(self.indexes, window=win)
        except RasterioError as exc:
            raise _read_failure(self.path, f"rows {r0}-{r1 - 1} of {self.shape[0]}", exc) from exc
        return self._values(raw, fill)

    def sample(self, src: rasterio.io.DatasetReader) -> np.ndarray:
        """Scaled values (bands, pixels) of valid pixels of a sample: the coarsest overview if the file has
        one, else ``SAMPLE_WINDOWS`` runs of ``SAMPLE_ROWS`` rows spread over the tile (central columns)."""
        n_rows, n_cols = self.shape
        levels = src.overviews(self.indexes[0])
        if levels:
            f = levels[-1]
            shape = (len(self.indexes), max(1, -(-n_rows // f)), max(1, -(-n_cols // f)))
            try:
                raw = src.read(self.indexes, out_shape=shape)
            except RasterioError as exc:
                raise _read_failure(self.path, f"its 1/{f} overview", exc) from exc
            data, valid = self._values(raw)
            return data[:, valid]
        width = min(n_cols, SAMPLE_COLS)
        c0 = (n_cols - width) // 2
        if n_rows <= SAMPLE_ROWS * SAMPLE_WINDOWS:
            runs = [(0, n_rows)]
        else:
            centres = [(2 * k + 1) * n_rows // (2 * SAMPLE_WINDOWS) for k in range(SAMPLE_WINDOWS)]
            runs = [(c - SAMPLE_ROWS // 2, c - SAMPLE_ROWS // 2 + SAMPLE_ROWS) for c in centres]
        parts = []
        for r0, r1 in runs:
            try:
                raw = src.read(self.indexes, window=Window(c0, r0, width, r1 - r0))
            except RasterioError as exc:
                raise _read_failure(self.path, f"rows {r0}-{r1 - 1} of {n_rows}", exc) from exc
            data, valid = self._values(raw)
            parts.append(data[:, valid])
        return np.concatenate(parts, axis=1)

    def check_range(self, src: rasterio.io.DatasetReader) -> None:
        """Stop where a sample of the scaled values is evidently not reflectance (:data:`RANGE_LIMITS`).

        Raises:
            InputError: names the file, the band, its median and 99th percentile, the scaling used and the fix.
        """
        values = self.sample(src)
        if not values.shape[1]:
            return  # nothing valid in the sample: nothing to judge
        median, p99 = np.median(values, axis=1), np.percentile(values, 99, axis=1)
        for name, m, p in zip(self.bands, median, p99, strict=True):
            if m > RANGE_LIMITS[0] or p > RANGE_LIMITS[1]:
                raise InputError(
                    self.path,
                    f"band {name} reads {m:.4g} (median) and {p:.4g} (99th percentile) after scaling "
                    f"({self.scaling}), where reflectance lies within about -0.2..1.5: the values are not "
                    "reflectance; pass the file's scale, e.g. --scale 10000 for Sentinel-2 digital numbers "
                    "(with --offset -1000 for processing baseline 04.00 and later)",
                )


def _band_names(
    path: Path, desc: list[str | None], file_bands: Sequence[str] | None, count: int, bands: Sequence[str]
) -> list[str]:
    """The file's band names (:func:`band_name` spelling), from ``file_bands`` or the descriptions; checked.

    Raises:
        InputError: no names, more names than bands, or a model band missing.
        ParameterError: ``file_bands`` contradict the descriptions.
    """
    if file_bands:
        if len(file_bands) > count:
            raise InputError(path, f"has {count} bands, but {len(file_bands)} were named: {list(file_bands)}")
        clash = [
            f"band {i} is described as {d!r}, not {b!r}"
            for i, (b, d) in enumerate(zip(file_bands, desc, strict=False), start=1)
            if d and band_name(d) in KNOWN_BANDS and band_name(d) != band_name(b)
        ]
        if clash:
            raise ParameterError(
                "bands",
                f"{','.join(file_bands)} contradicts the band descriptions of {path}: {'; '.join(clash)}. "
                "Leave --bands out (the descriptions name the bands) or correct it",
            )
        shown = list(file_bands)
    elif all(desc):
        shown = list(desc)
    else:
        raise InputError(path, f"bands have no names: pass the file's band order (e.g. --bands {','.join(bands)})")
    names = [band_name(b) for b in shown]
    missing = [b for b in bands if band_name(b) not in names]
    if missing:
        raise InputError(path, f"lacks band(s) {missing} the model was trained on; it has {shown}")
    return names


class _RowReader:
    """One open handle of a tile, which keeps the rows it read last.

    Consecutive strips share ``size - keep = 2 x edge`` rows (the demo's 48 of 128, the paper's 200 of 576): a
    strip that follows the last one takes those rows from here rather than decoding and scaling them again.
    The values are the same either way (scaling is pixel by pixel), so the outputs are too.
    """

    def __init__(self, tile: InputTile, src: rasterio.io.DatasetReader):
        self.tile, self.src = tile, src
        self.last: tuple[int, int, np.ndarray, np.ndarray] | None = None  # (first row, end row, values, valid)

    def rows(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``lo..hi`` of the tile: float32 values (0 where no data) and the valid mask."""
        if self.last is not None and self.last[0] <= lo < self.last[1] < hi:
            a, b, data, valid = self.last
            new, new_valid = self.tile.read_rows(self.src, b, hi, fill=0.0)
            data = np.concatenate((data[:, lo - a :], new), axis=1)
            valid = np.concatenate((valid[lo - a :], new_valid), axis=0)
        else:
            data, valid = self.tile.read_rows(self.src, lo, hi, fill=0.0)
        self.last = (lo, hi, data, valid)
        return data, valid


def _padded_strip(reader: _RowReader, row0: int, size: int, edge: int) -> tuple[np.ndarray, np.ndarray]:
    """The input rows ``row0 .. row0 + size`` (tile coordinates, may exceed the tile), reflect-padded,
    and padded by ``edge`` columns left and enough right for whole windows; no data set to 0."""
    n_rows, n_cols = reader.tile.shape
    lo, hi = max(row0, 0), min(row0 + size, n_rows)
    data, valid = reader.rows(lo, hi)
    col_starts = windows.starts(n_cols, size, edge)
    right = col_starts[-1] + size - n_cols
    pad = ((0, 0), (lo - row0, row0 + size - hi), (edge, right))
    return np.pad(data, pad, mode="reflect"), valid


def resolve_pipeline(pipeline: str, device: str = "cpu") -> str:
    """``sequential`` or ``overlapped``: ``auto`` becomes ``AUTO_PIPELINE``'s choice for ``device``."""
    if pipeline not in PIPELINES:
        raise ParameterError("pipeline", f"expected one of {PIPELINES}, got {pipeline!r}")
    if pipeline != "auto":
        return pipeline
    return AUTO_PIPELINE.get(str(device).split(":")[0], "overlapped")


@dataclass
class _Strips:
    """What every strip of one tile shares: its geometry, the model call and the two open outputs.

    A model call with an ``empty(shape)`` attribute (:func:`lakepaper.predict.model.make_forward` on CUDA) gets its
    windows in float32 arrays it allocated (pinned host memory), stacked there by the reader threads.
    """

    tile: InputTile
    forward: Forward
    size: int
    edge: int
    keep: int
    batch: int
    threshold: float
    col_starts: list[int]
    dst_p: rasterio.io.DatasetWriter
    dst_m: rasterio.io.DatasetWriter

    def batches(self, reader: _RowReader, r0: int) -> tuple[Iterator[np.ndarray], np.ndarray]:
        """The strip at ``r0``: its windows ``batch`` at a time (float32, made as iterated) and its valid mask."""
        strip, valid = _padded_strip(reader, r0, self.size, self.edge)
        e, n = self.edge, self.size
        cuts = [strip[:, :, c + e : c + e + n] for c in self.col_starts]
        groups = (cuts[k : k + self.batch] for k in range(0, len(cuts), self.batch))
        empty = getattr(self.forward, "empty", None)
        if empty is None:
            return (np.stack(g).astype(np.float32, copy=False) for g in groups), valid
        # the model call's own host buffers (pinned memory on CUDA): the windows are stacked straight into them
        return (np.stack(g, out=empty((len(g), strip.shape[0], n, n))) for g in groups), valid

    def model(self, batches) -> tuple[list[np.ndarray], float]:
        """The probabilities of every window of a strip, and the seconds spent in the model."""
        probs, seconds = [], 0.0
        for x in batches:
            t0 = time.perf_counter()
            probs.extend(self.forward(x))
            seconds += time.perf_counter() - t0
        return probs, seconds

    def write(self, r0: int, probs: list[np.ndarray], valid: np.ndarray) -> tuple[int, int]:
        """Stitch the kept centres of a strip, write them into both outputs; (lake pixels, no-data pixels)."""
        n_rows, n_cols = self.tile.shape
        edge, keep = self.edge, self.keep
        row_lo, row_hi = r0 + edge, min(r0 + edge + keep, n_rows)
        centre = np.concatenate([q[edge : edge + keep, edge : edge + keep] for q in probs], axis=1)
        centre = centre[: row_hi - row_lo, :n_cols]
        ok = valid[row_lo - max(r0, 0) : row_hi - max(r0, 0)]
        prob8 = np.where(ok, np.rint(np.clip(centre, 0, 1) * PROB_SCALE), NODATA).astype(np.uint8)
        mask8 = np.where(ok, centre > self.threshold, NODATA).astype(np.uint8)
        win = Window(0, row_lo, n_cols, row_hi - row_lo)
        self.dst_p.write(prob8, 1, window=win)
        self.dst_m.write(mask8, 1, window=win)
        return int((mask8 == 1).sum()), int((~ok).sum())


def _sequential(job: _Strips, row_starts: list[int], bar) -> tuple[float, int, int]:
    """One strip after the other in this thread; (model seconds, lake pixels, no-data pixels)."""
    model_s, lake, nodata = 0.0, 0, 0
    with job.tile.reader() as src:
        reader = _RowReader(job.tile, src)
        for r0 in row_starts:
            batches, valid = job.batches(reader, r0)
            probs, seconds = job.model(batches)
            n_lake, n_nodata = job.write(r0, probs, valid)
            model_s, lake, nodata = model_s + seconds, lake + n_lake, nodata + n_nodata
            bar.update()
    return model_s, lake, nodata


def _overlapped(job: _Strips, row_starts: list[int], bar, readers: int) -> tuple[float, int, int]:
    """Reader threads ``DEPTH`` strips ahead, the model in this thread, a writer thread behind; same result."""
    local, handles, lock = threading.local(), [], threading.Lock()

    def read(r0: int) -> tuple[list[np.ndarray], np.ndarray]:
        reader = getattr(local, "reader", None)
        if reader is None:  # one dataset handle per reader thread: GDAL handles are not shared across threads
            src = job.tile.reader()
            local.reader = reader = _RowReader(job.tile, src)
            with lock:
                handles.append(src)
        batches, valid = job.batches(reader, r0)
        return list(batches), valid

    model_s, lake, nodata = 0.0, 0, 0
    pending: deque[Future] = deque()
    writes: deque[Future] = deque()
    try:
        with (
            ThreadPoolExecutor(readers, thread_name_prefix="lakepaper-read") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="lakepaper-write") as writer,  # one thread: strips in order
        ):
            try:
                ahead = iter(row_starts)
                for r0 in ahead:
                    pending.append(pool.submit(read, r0))
                    if len(pending) > DEPTH:
                        break
                for r0 in row_starts:
                    batches, valid = pending.popleft().result()
                    nxt = next(ahead, None)
                    if nxt is not None:
                        pending.append(pool.submit(read, nxt))
                    probs, seconds = job.model(batches)
                    del batches
                    model_s += seconds
                    writes.append(writer.submit(job.write, r0, probs, valid))
                    while len(writes) > DEPTH or (writes and writes[0].done()):
                        n_lake, n_nodata = writes.popleft().result()
                        lake, nodata = lake + n_lake, nodata + n_nodata
                        bar.update()
                while writes:
                    n_lake, n_nodata = writes.popleft().result()
                    lake, nodata = lake + n_lake, nodata + n_nodata
                    bar.update()
            except BaseException:
                for f in (*pending, *writes):
                    f.cancel()
                raise
    finally:
        for src in handles:
            src.close()
    return model_s, lake, nodata


def predict_tile(
    forward: Forward,
    tile: InputTile,
    out_prob: str | os.PathLike[str],
    out_mask: str | os.PathLike[str],
    *,
    size: int,
    edge: int,
    batch: int = 4,
    threshold: float = 0.5,
    progress: bool = False,
    run_id: str = "",
    pipeline: str = "auto",
    readers: int | None = None,
) -> dict:
    """Predict every pixel of ``tile`` once; write the probability and mask COGs.

    Args:
        forward: the model call (see ``Forward``); its ``device`` attribute, if any, picks the ``auto`` pipeline.
        tile: the opened input (:meth:`InputTile.open`).
        out_prob, out_mask: the two GeoTIFFs to write.
        size: window side (the model's patch size); edge: pixels discarded at each window border.
        batch: windows per model call.
        threshold: probability above which a pixel is lake (the paper's 0.5).
        run_id: written into both files as the ``RUN_ID`` tag (:func:`lakepaper.predict.cluster.run_id`: which
            model, input and settings made them); empty: no tag.
        pipeline: ``sequential``, ``overlapped`` or ``auto`` (see the module's docstring); the outputs are the
            same bytes either way.
        readers: reader threads of the overlapped loop (default: 1 on CPU, up to 4 with a GPU).

    Returns:
        tile, pixels, windows, lake share, no-data share, seconds (total and in the model), the pipeline run.
    """
    from tqdm.auto import tqdm

    keep = windows.check_geometry(size, edge)
    if batch < 1:
        raise ParameterError("batch", f"must be >= 1, got {batch}")
    if not 0.0 < threshold < 1.0:
        raise ParameterError("prob_threshold", f"must lie in (0, 1), got {threshold}")
    device = str(getattr(forward, "device", "cpu"))
    pipeline = resolve_pipeline(pipeline, device)
    if readers is None:
        readers = 1 if device == "cpu" else max(1, min(4, (os.cpu_count() or 2) // 2))
    if readers < 1:
        raise ParameterError("readers", f"must be >= 1, got {readers}")
    started = time.perf_counter()
    n_rows, n_cols = tile.shape
    row_starts, col_starts = windows.starts(n_rows, size, edge), windows.starts(n_cols, size, edge)
    profile = {k: tile.profile[k] for k in ("crs", "transform", "width", "height")}
    out = dict(
        profile,
        driver="GTiff",
        count=1,
        dtype="uint8",
        nodata=NODATA,
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )  # uncompressed: the COG copy at the end compresses each block once (deflating here too cost ~4 % of a tile)
    if n_cols < 256 or n_rows < 256:
        out.update(tiled=False) if min(n_cols, n_rows) < 16 else out.update(blockxsize=16, blockysize=16)
    bar_options = {"unit": "strip", "disable": not progress, "leave": False}
    with atomic_path(out_prob) as tmp_prob, atomic_path(out_mask) as tmp_mask:
        # strips go to plain, uncompressed GeoTIFFs first; the COG driver then lays out, compresses and adds overviews
        strips = [t.with_name(t.name + ".strips.tif") for t in (tmp_prob, tmp_mask)]
        try:
            with (
                rasterio.open(strips[0], "w", **out) as dst_p,
                rasterio.open(strips[1], "w", **out) as dst_m,
                tqdm(total=len(row_starts), desc=tile.path.stem, **bar_options) as bar,
            ):
                job = _Strips(tile, forward, size, edge, keep, batch, threshold, col_starts, dst_p, dst_m)
                if pipeline == "overlapped":
                    model_s, lake, nodata = _overlapped(job, row_starts, bar, readers)
                else:
                    model_s, lake, nodata = _sequential(job, row_starts, bar)
                common = {"THRESHOLD": threshold, "WINDOW": size, "EDGE": edge, "SOURCE": tile.path.name}
                if run_id:
                    common["RUN_ID"] = run_id
                dst_p.update_tags(SCALE=PROB_SCALE, CONTENT=f"lake probability x {PROB_SCALE}", **common)
                dst_m.update_tags(SCALE=1, CONTENT="lake mask: 1 lake, 0 not lake", **common)
                dst_p.set_band_description(1, "lake_probability")
                dst_m.set_band_description(1, "lake")
            pairs = ((strips[0], tmp_prob), (strips[1], tmp_mask))
            # the two COGs at once, in either loop (GDAL compresses without the GIL; the model is done by now)
            with ThreadPoolExecutor(2, thread_name_prefix="lakepaper-cog") as pool:
                for f in [pool.submit(rasterio.shutil.copy, a, b, **COG_OPTIONS) for a, b in pairs]:
                    f.result()
        finally:
            for s in strips:
                s.unlink(missing_ok=True)
    pixels = n_rows * n_cols
    return {
        "tile": tile.path.stem,
        "pixels": pixels,
        "windows": len(row_starts) * len(col_starts),
        "lake_share": lake / pixels,
        "nodata_share": nodata / pixels,
        "seconds": time.perf_counter() - started,
        "model_seconds": model_s,
        "pipeline": pipeline,
    }
