"""The Qinghai-Tibet Plateau lake dataset (Wang Zhaobin et al., National Cryosphere Desert Data Center).

What is published (``shared/seeds/qtp_lake_dataset.txt``): 6,774 RGB Google Earth images (level 14,
17 m), 256 x 256, and 6,774 ground-truth images "corresponding" to them, lake water bodies in red
and background in black, drawn in Labelme and by visual interpretation. Nothing more is fixed:
no folder names, no file naming, no file format, no split.

So the reader fixes nothing it need not:

Folders (:func:`find_folders`)
    the images and the ground truths are two folders under the dataset root (or one level down,
    as a zip unpacks). They are told apart by name (``images``/``image``/``img``/``rgb``/... vs
    ``ground_truth``/``gt``/``labels``/``label``/``masks``/...); failing that, by content: the
    ground-truth folder is the one whose files hold only red and black. Both can be given.
Pairing (:func:`index`)
    by file name without suffix, case-insensitive, after removing a trailing ``_gt``, ``_label``,
    ``_mask``, ``_ground_truth`` (and ``-`` variants): ``0001.jpg`` pairs with ``0001.png`` and with
    ``0001_gt.png``. Any image format Pillow reads (JPEG, PNG, TIFF, BMP).
Ground truth to mask (:func:`truth_to_mask`)
    the "red" of a ground truth may be pure red (255, 0, 0) or Labelme's dark red (128, 0, 0), and
    JPEG compression smears it: chroma is stored at half resolution, so at a lake's edge the colour
    bleeds (a red pixel beside black decodes greyish, a black one reddish), while luminance
    ``Y = 0.299 R + 0.587 G + 0.114 B`` keeps full resolution. Between red and black only
    luminance differs, so a pixel is lake when its Y reaches half of the red's Y (the median Y of
    the clearly red pixels, ``R - max(G, B) >= 64``; pure red's 76 where there are none): the
    mid-point between black and the red actually used. On the replica's JPEG (quality 75, 4:2:0)
    this recovers the true lakes with IoU 0.998, where thresholding redness gives 0.93. A pixel is
    neither red nor black when it is green- or blue-dominated (``max(G, B) - R >= 48``) or brighter
    than the red (``Y > max(1.5 Y_red, Y_red + 40)``: white, light grey); more than 0.5 % of them and
    the file is not a red/black ground truth. Single-band ground truths (0/1 or 0/255) are read too.
Problems (:attr:`QTPIndex.problems`)
    an image without ground truth or the reverse, two files of one name, a file that is not an
    image or is truncated, an image that is not RGB or not 256 x 256, a ground truth of another size
    than its image or not red/black: each is a row of the problems table (file, kind, problem) and
    the pair is left out of ``pairs``; nothing is skipped without a row. ``strict=True`` raises on
    the first instead.
Split (:func:`split`)
    none is published; a seeded 60/20/20 by image (``params.qtp_split_fractions``, ``qtp_split_seed``).

Example:
    >>> ix = index("QTP_lakes")  # doctest: +SKIP
    >>> ix.problems  # doctest: +SKIP
    >>> chips = load_chips(ix, split(ix, (0.6, 0.2, 0.2), 7), "train")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lakepaper.datasets.images import is_image, read_pixels, rgb
from lakepaper.datasets.split import split_groups
from lakepaper.errors import InputError
from lakepaper.samples.chips import Chip

IMAGE_FOLDERS = ("images", "image", "imgs", "img", "rgb", "jpegimages", "src", "data", "sat", "photos")
TRUTH_FOLDERS = (
    "groundtruth",
    "groundtruths",
    "gt",
    "gts",
    "labels",
    "label",
    "masks",
    "mask",
    "annotations",
    "segmentationclass",
    "truth",
    "truths",
    "lab",
)
NAME_SUFFIX = re.compile(r"[_-](ground[_-]?truth|gt|label|labels|mask|lab)$", re.IGNORECASE)
#: Band names of the RGB chips handed to the U-Net.
RGB_BANDS = ("R", "G", "B")
PROBLEM_COLUMNS = ("file", "name", "kind", "problem")

RED_CLEAR = 64  # R - max(G, B) of a clearly red pixel
PURE_RED_Y = 0.299 * 255
GREEN_BLUE = 48  # max(G, B) - R from which a pixel is green or blue, not red or black
MAX_FOREIGN_SHARE = 0.005


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.casefold())


def pair_key(path: str | os.PathLike[str]) -> str:
    """The name a file is paired by: its stem, lower case, without a ground-truth suffix."""
    return NAME_SUFFIX.sub("", Path(path).stem).casefold()


# --- ground truth -> mask -----------------------------------------------------------------------


def truth_to_mask(pixels: np.ndarray, path: str | os.PathLike[str] = "ground truth") -> np.ndarray:
    """A red/black ground truth (rows, cols, 3|4) or a 0/1 or 0/255 one (rows, cols) -> uint8 0/1 mask.

    Raises:
        InputError: the image is not a red/black (or binary) ground truth.
    """
    if pixels.ndim == 2:
        v = pixels.astype(np.int64)
        top = int(v.max())
        if top == 0:
            return np.zeros(v.shape, np.uint8)
        mask = v >= max(1, top / 2)
        between = (v > top * 0.25) & (v < top * 0.75)
        if between.mean() > MAX_FOREIGN_SHARE:
            raise InputError(path, f"single-band ground truth is not binary: {between.mean():.1%} of pixels in between")
        return mask.astype(np.uint8)
    c = rgb(pixels, path).astype(np.float32)
    r, other = c[..., 0], np.maximum(c[..., 1], c[..., 2])
    y = 0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2]
    clear = (r - other) >= RED_CLEAR
    y_red = float(np.median(y[clear])) if clear.any() else PURE_RED_Y
    foreign = ((other - r) >= GREEN_BLUE) | (y > max(1.5 * y_red, y_red + 40))
    share = float(foreign.mean())
    if share > MAX_FOREIGN_SHARE:
        row, col = np.argwhere(foreign)[0]
        raise InputError(
            path,
            f"not a red/black ground truth: {share:.1%} of pixels are neither red nor black "
            f"(e.g. RGB {tuple(int(x) for x in c[row, col])} at row {row}, col {col})",
        )
    return (y >= y_red / 2).astype(np.uint8)


# --- folders and pairs ------------------------------------------------------------------------


def _image_folders(root: Path, depth: int = 2) -> list[Path]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if any(is_image(f) for f in d.iterdir() if f.is_file()):
            out.append(d)
        elif depth > 1:
            out += _image_folders(d, depth - 1)
    return out


def _looks_like_truth(folder: Path, n: int = 5) -> bool:
    files = sorted(f for f in folder.iterdir() if f.is_file() and is_image(f))[:n]
    ok = 0
    for f in files:
        try:
            truth_to_mask(read_pixels(f)[0], f)
            ok += 1
        except InputError:
            pass
    return bool(files) and ok == len(files)


def find_folders(root: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(image folder, ground-truth folder) of a dataset root (see the module doc).

    Raises:
        InputError: the root is missing, or the two folders cannot be told apart.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "QTP dataset folder not found")
    folders = _image_folders(root)
    names = {f: _norm(f.name) for f in folders}
    images = [f for f in folders if names[f] in IMAGE_FOLDERS]
    truths = [f for f in folders if names[f] in TRUTH_FOLDERS]
    if len(images) == 1 and len(truths) == 1:
        return images[0], truths[0]
    if len(folders) == 2:
        looks = [_looks_like_truth(f) for f in folders]
        if looks.count(True) == 1:
            return folders[looks.index(False)], folders[looks.index(True)]
    found = ", ".join(str(f.relative_to(root)) for f in folders) or "none"
    raise InputError(
        root,
        f"cannot tell the image folder from the ground-truth folder (folders holding images: {found}); "
        "name them (image_dir=..., truth_dir=...)",
    )


@dataclass(frozen=True)
class QTPIndex:
    """The dataset as found on disk.

    Attributes:
        root, image_dir, truth_dir: where it lies.
        pairs: one row per usable pair: ``name`` (the pairing key), ``image`` and ``truth`` (paths
            relative to ``root``), ``lake_share`` (when checked).
        problems: one row per file left out: ``file`` (relative to ``root``), ``name``, ``kind``,
            ``problem``.
        n_images, n_truths: image files found in each folder.
    """

    root: Path
    image_dir: Path
    truth_dir: Path
    pairs: pd.DataFrame
    problems: pd.DataFrame
    n_images: int
    n_truths: int

    def summary(self) -> dict:
        kinds = self.problems.kind.value_counts().to_dict() if len(self.problems) else {}
        return {"images": self.n_images, "ground_truths": self.n_truths, "pairs": len(self.pairs), **kinds}


def _listing(folder: Path, root: Path, problems: list, what: str) -> dict[str, Path]:
    keyed: dict[str, list[Path]] = {}
    for f in sorted(folder.iterdir()):
        if f.name.startswith("."):
            continue
        if f.is_dir():
            problems.append((f, pair_key(f), "not an image", f"a folder inside the {what} folder"))
        elif not is_image(f):
            problems.append((f, pair_key(f), "not an image", f"suffix {f.suffix or '(none)'!r} in the {what} folder"))
        else:
            keyed.setdefault(pair_key(f), []).append(f)
    out = {}
    for key, files in keyed.items():
        if len(files) > 1:
            for f in files:
                others = ", ".join(x.name for x in files if x != f)
                problems.append((f, key, "duplicate name", f"{what} {f.name} shares its name with {others}"))
        else:
            out[key] = files[0]
    return out


def check_pair(image_path: Path, truth_path: Path, size: int | None = 256) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one pair; return (RGB uint8 (rows, cols, 3), mask uint8 0/1).

    Raises:
        InputError: naming the file at fault (unreadable, not RGB, wrong size, not red/black).
    """
    image = rgb(read_pixels(image_path)[0], image_path)
    if size is not None and image.shape[:2] != (size, size):
        raise InputError(image_path, f"image is {image.shape[1]} x {image.shape[0]}, the dataset's are {size} x {size}")
    truth = read_pixels(truth_path)[0]
    if truth.shape[:2] != image.shape[:2]:
        raise InputError(
            truth_path,
            f"ground truth is {truth.shape[1]} x {truth.shape[0]}, its image {image_path.name} is "
            f"{image.shape[1]} x {image.shape[0]}",
        )
    return image, truth_to_mask(truth, truth_path)


def _kind(exc: InputError) -> str:
    text = exc.problem
    for key, kind in (
        ("truncated", "unreadable"),
        ("not an image", "unreadable"),
        ("not found", "unreadable"),
        ("ground truth is", "wrong size"),
        ("image is", "wrong size"),
        ("red/black", "not red/black"),
        ("not binary", "not red/black"),
        ("RGB", "not RGB"),
        ("band", "not RGB"),
        ("8-bit", "not RGB"),
    ):
        if key in text:
            return kind
    return "malformed"


def index(
    root: str | os.PathLike[str],
    *,
    image_dir: str | os.PathLike[str] | None = None,
    truth_dir: str | os.PathLike[str] | None = None,
    size: int | None = 256,
    check: bool = True,
    strict: bool = False,
) -> QTPIndex:
    """Find, pair and (``check``) read every file of the dataset once.

    Args:
        root: the dataset folder.
        image_dir, truth_dir: the two folders (relative to ``root`` or absolute); found when None.
        size: the side every image must have (None: any, but a ground truth must match its image).
        check: decode every pair (finds truncated, mis-sized and non red/black files); False only
            pairs names.
        strict: raise the first problem instead of listing it.

    Raises:
        InputError: no pair at all, the folders cannot be found, or (``strict``) any problem.
    """
    root = Path(root)
    if image_dir is None or truth_dir is None:
        found_images, found_truths = find_folders(root)
        image_dir = image_dir or found_images
        truth_dir = truth_dir or found_truths
    image_dir, truth_dir = root / image_dir, root / truth_dir
    for d in (image_dir, truth_dir):
        if not d.is_dir():
            raise InputError(d, "folder not found")
    problems: list[tuple] = []
    images = _listing(image_dir, root, problems, "image")
    truths = _listing(truth_dir, root, problems, "ground-truth")
    dups = {k for _, k, kind, _ in problems if kind == "duplicate name"}
    for key in sorted(set(images) - set(truths)):
        why = "several ground truths have this name" if key in dups else f"no ground truth named {key!r}"
        problems.append((images[key], key, "unpaired image", f"{why} in {truth_dir.name}/"))
    for key in sorted(set(truths) - set(images)):
        why = "several images have this name" if key in dups else f"no image named {key!r}"
        problems.append((truths[key], key, "unpaired ground truth", f"{why} in {image_dir.name}/"))
    rows = []
    for key in sorted(set(images) & set(truths)):
        row = {"name": key, "image": images[key], "truth": truths[key]}
        if check:
            try:
                _, mask = check_pair(images[key], truths[key], size)
            except InputError as exc:
                problems.append((Path(exc.path), key, _kind(exc), exc.problem))
                continue
            row["lake_share"] = float(mask.mean())
        rows.append(row)
    table = pd.DataFrame([(str(_rel(f, root)), k, kind, msg) for f, k, kind, msg in problems], columns=PROBLEM_COLUMNS)
    table = table.sort_values(["kind", "file"], ignore_index=True)
    if strict and len(table):
        first = table.iloc[0]
        raise InputError(root / first.file, f"{first.kind}: {first.problem}")
    pairs = pd.DataFrame(rows, columns=["name", "image", "truth", *(["lake_share"] if check else [])])
    for col in ("image", "truth"):
        pairs[col] = [str(_rel(Path(p), root)) for p in pairs[col]]
    if pairs.empty:
        raise InputError(
            root,
            f"no usable image/ground-truth pair ({len(table)} problem(s), first: "
            f"{table.iloc[0].to_dict() if len(table) else 'none'})",
        )
    n_images = sum(1 for f in image_dir.iterdir() if f.is_file() and is_image(f))
    n_truths = sum(1 for f in truth_dir.iterdir() if f.is_file() and is_image(f))
    return QTPIndex(root, image_dir, truth_dir, pairs, table, n_images, n_truths)


def _rel(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


# --- split and chips ------------------------------------------------------------------------


def split(ix: QTPIndex, fractions: Sequence[float], seed: int, groups: pd.Series | None = None) -> pd.Series:
    """``train``/``val``/``test`` per pair name, seeded: by group when ``groups`` (pair name -> group, e.g.
    :func:`view_groups`) is given, every image of a group in one subset; else each image its own group."""
    if groups is None:
        assigned = split_groups(ix.pairs.name.tolist(), fractions, seed)
        return pd.Series(assigned, name="split").reindex(ix.pairs.name)
    g = groups.reindex(ix.pairs.name).astype(str)
    assigned = split_groups(sorted(set(g)), fractions, seed)
    return g.map(assigned).rename("split")


def view_groups(ix: QTPIndex, *, min_overlap: float = 0.15, min_corr: float = 0.8) -> tuple[pd.Series, pd.DataFrame]:
    """Groups of images that show the same ground (:mod:`lakepaper.datasets.duplicates`).

    Returns:
        (pair name -> group name ``v0001``..., the overlapping pairs with their names in ``a``, ``b``).
    """
    from lakepaper.datasets.duplicates import overlapping_pairs
    from lakepaper.datasets.duplicates import view_groups as components

    names = ix.pairs.name.tolist()
    images = [read_pair(ix, n)[0] for n in names]
    pairs = overlapping_pairs(images, min_overlap=min_overlap, min_corr=min_corr)
    labels = components(len(names), pairs)
    groups = pd.Series([f"v{k + 1:04d}" for k in labels], index=pd.Index(names, name="name"), name="group")
    pairs = pairs.assign(a=[names[i] for i in pairs["i"]], b=[names[j] for j in pairs["j"]])
    return groups, pairs


def overlapping_train(splits: pd.Series, groups: pd.Series) -> pd.Series:
    """Per image of the validation and test subsets: True when it shares a group with a training image."""
    g = groups.reindex(splits.index)
    trained = set(g[splits == "train"])
    held = splits[splits != "train"]
    return pd.Series([g[n] in trained for n in held.index], index=held.index, name="overlaps_train")


def read_pair(ix: QTPIndex, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (rows, cols, 3), mask uint8 0/1) of one pair of the index."""
    row = ix.pairs.set_index("name").loc[name]
    return check_pair(ix.root / row.image, ix.root / row.truth, None)


def load_chips(
    ix: QTPIndex, splits: Mapping[str, str] | pd.Series, subset: str, *, resolution_m: float = 17.0
) -> list[Chip]:
    """The pairs of one subset as U-Net chips: image float32 (3, rows, cols) in 0..1 (R, G, B), label 0/1."""
    names = [n for n in ix.pairs.name if splits[n] == subset]
    chips = []
    for n in names:
        image, mask = read_pair(ix, n)
        area = image.shape[0] * image.shape[1] * resolution_m**2 / 1e6
        chips.append(
            Chip(n, "QTP", subset, area, np.moveaxis(image, -1, 0).astype(np.float32) / 255.0, mask, RGB_BANDS)
        )
    return chips
