"""The compositing kernel: per-pixel mean over clear observations, in a single pass.

For every pixel the paper averages, over the clear observations of all scenes, B2, B3, B4,
B11 (resampled to 10 m) and the per-scene NDWI = (B3 - B8) / (B3 + B8) (section 2.1). NDWI is
computed per scene and then averaged, not computed from the mean bands.

A NaN-masked ``np.nanmean`` over a (scenes, rows, cols) stack makes full-size float temporaries
per step and reaches a few percent of memory-copy bandwidth. Here a numba kernel runs over rows
in parallel; for each row it keeps running sums in a small row buffer (in cache), streams the
row of every scene of the batch through it, and writes the sums back once. Scene data are read
once as uint16 and never converted to a full-size float array. Within a call the row sums are
float32 (exact for integer DN sums below 2**24, i.e. ~250 scenes of bright pixels; beyond that
the relative rounding is ~1e-7), added into float64 tile sums at the end of the call.

:class:`Accumulator` holds the float64 sums and the int32 count of one tile and takes scenes in
batches of any size (one scene at a time keeps memory independent of the number of scenes),
and may cover a block of rows of a larger read (``row0``). ``parallel=False`` runs the same
arithmetic on the calling thread only, for callers that parallelise over threads themselves;
both give the same bits.
"""

from __future__ import annotations

import numba
import numpy as np

#: Planes of the per-scene input: B2 B3 B4 B8 B11, all at 10 m, uint16 reflectance x 10000.
INPUT_BANDS = ("B2", "B3", "B4", "B8", "B11")
#: Planes of the mean: B2 B3 B4 B11 (DN) and NDWI.
MEAN_BANDS = ("B2", "B3", "B4", "B11", "NDWI")
#: The reflectance unit of the kernel and the masks: DN = reflectance x 10000 (ESA's QUANTIFICATION_VALUE).
DN_SCALE = 10000


@numba.njit(cache=True, nogil=True, inline="always")
def _add_row(bands, clear, rr, r, sums, count):  # pragma: no cover - compiled
    """Add row ``rr`` of every scene of the batch into row ``r`` of the sums."""
    n_scenes, _, _, cols = bands.shape
    acc = np.zeros((5, cols), np.float32)  # this batch's row sums, in cache; float32 vectorises wider
    cnt = np.zeros(cols, np.int32)
    for s in range(n_scenes):
        for c in range(cols):  # branchless: a masked observation adds 0 (vectorises)
            w = np.float32(clear[s, rr, c])
            b3 = np.float32(bands[s, 1, rr, c])
            b8 = np.float32(bands[s, 3, rr, c])
            acc[0, c] += w * bands[s, 0, rr, c]
            acc[1, c] += w * b3
            acc[2, c] += w * bands[s, 2, rr, c]
            acc[3, c] += w * bands[s, 4, rr, c]
            acc[4, c] += w * (b3 - b8) / max(b3 + b8, np.float32(1.0))
            cnt[c] += clear[s, rr, c]
    for c in range(cols):
        count[r, c] += cnt[c]
        for k in range(5):
            sums[k, r, c] += acc[k, c]


@numba.njit(parallel=True, cache=True, nogil=True)
def _accumulate(bands, clear, row0, sums, count):  # pragma: no cover - compiled
    for r in numba.prange(count.shape[0]):
        _add_row(bands, clear, row0 + r, r, sums, count)


@numba.njit(cache=True, nogil=True)
def _accumulate_serial(bands, clear, row0, sums, count):  # pragma: no cover - compiled
    # the same arithmetic per row as _accumulate (so the same bits), on the calling thread only:
    # for callers that run several of these at once on threads of their own (local.composite_tile)
    for r in range(count.shape[0]):
        _add_row(bands, clear, row0 + r, r, sums, count)


class Accumulator:
    """Running sums of the clear observations of one tile.

    Example:
        >>> acc = Accumulator((2, 2))
        >>> b = np.full((1, 5, 2, 2), 1000, np.uint16); b[:, 3] = 3000
        >>> acc.add(b, np.ones((1, 2, 2), bool))
        >>> mean, count = acc.result()
        >>> float(mean[0, 0, 0]), float(mean[4, 0, 0]), int(count[0, 0])
        (1000.0, -0.5, 1)
    """

    def __init__(self, shape: tuple[int, int], *, parallel: bool = True) -> None:
        self.sums = np.zeros((5, *shape), np.float64)
        self.count = np.zeros(shape, np.int32)
        self.parallel = parallel

    def add(self, bands: np.ndarray, clear: np.ndarray, *, row0: int = 0) -> None:
        """Add a batch of scenes.

        Args:
            bands: (scenes, 5, rows, cols) or (5, rows, cols) uint16 B2 B3 B4 B8 B11 (x 10000).
            clear: (scenes, rows, cols) or (rows, cols) bool; only these observations count.
            row0: row of ``bands`` and ``clear`` that is the accumulator's first row; they may have
                more rows than the accumulator (a block read with a halo: only its inner rows count).
        """
        if bands.ndim == 3:
            bands, clear = bands[np.newaxis], clear[np.newaxis]
        rows, cols = self.count.shape
        if (
            bands.shape[1] != 5
            or bands.shape[3] != cols
            or not 0 <= row0 <= bands.shape[2] - rows
            or clear.shape != (bands.shape[0], *bands.shape[2:])
        ):
            raise ValueError(
                f"bands {bands.shape} / clear {clear.shape} from row {row0} do not fit a tile of {self.count.shape}"
            )
        kernel = _accumulate if self.parallel else _accumulate_serial
        kernel(
            np.ascontiguousarray(bands, dtype=np.uint16),
            np.ascontiguousarray(clear, dtype=np.bool_),
            row0,
            self.sums,
            self.count,
        )

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The means and the clear-observation count.

        Returns:
            (mean (5, rows, cols) float32: B2 B3 B4 B11 in DN (x 10000) and NDWI, NaN where count is 0;
            count (rows, cols) int32).
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (self.sums / self.count).astype(np.float32)
        mean[:, self.count == 0] = np.nan
        return mean, self.count.copy()


def composite_stack(bands: np.ndarray, clear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clear-observation mean of an in-memory stack, in one pass (see :class:`Accumulator`).

    Args:
        bands: (scenes, 5, rows, cols) uint16 B2 B3 B4 B8 B11.
        clear: (scenes, rows, cols) bool.

    Returns:
        (mean (5, rows, cols) float32 of B2 B3 B4 B11 in DN and NDWI, NaN where never clear; count).
    """
    acc = Accumulator(bands.shape[2:])
    acc.add(bands, clear)
    return acc.result()
