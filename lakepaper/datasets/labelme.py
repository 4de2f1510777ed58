"""Labelme annotation files (JSON), of any Labelme version, and their rasterisation.

What differs between versions, and how it is read:

* 3.x writes shapes without ``shape_type`` (a polygon), with ``line_color``/``fill_color``, and
  sometimes no ``imageHeight``/``imageWidth``; 4.x/5.x add ``shape_type``, ``flags``,
  ``group_id``, ``description``; 5.3+ may store a ``mask`` shape (a base64 PNG over the box of
  its two points).
* Shapes: ``polygon`` (3+ points), ``rectangle`` (two opposite corners, in any order),
  ``oriented_rectangle`` (4 points), ``circle`` (centre and a point on the circle) and ``mask`` are
  areas. ``line``, ``linestrip``, ``point`` and ``points`` have no area: they are counted in
  :attr:`Annotation.skipped`, never silently dropped from the count.
* ``imagePath`` is relative to the JSON (``img.jpg``, ``..\\images\\img.jpg``) or absolute, often
  a Windows path from the annotator's machine. It is resolved, in order: as written (absolute,
  or relative to the JSON's folder, backslashes read as separators); then its file name in the
  JSON's folder and in the ``search`` folders. If none exists but the JSON embeds the image
  (``imageData``), the embedded image is used; otherwise it is an error naming the JSON.
* ``imageHeight``/``imageWidth``, when present, must equal the image's size.

Coordinates are Labelme's: ``x`` to the right and ``y`` down, in pixels, with ``(0, 0)`` the
top-left corner of the top-left pixel (Qt's image coordinates), i.e. GDAL's pixel/line
convention. A polygon is therefore mapped to the ground by the image's geotransform, and burnt
with GDAL's rule (a pixel is in when its centre is inside, :func:`rasterio.features.rasterize`).
Labelme's own ``labelme_json_to_dataset`` draws with Pillow, whose integer coordinates are pixel
centres: its masks lie half a pixel up and left of these. The published dataset was rasterised
with GDAL ("to ensure strict spatial coordinate matching"), as here.
"""

from __future__ import annotations

import base64
import io as _io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np
import shapely
from rasterio import features
from rasterio.transform import Affine
from shapely import affinity
from shapely.geometry import Polygon
from shapely.geometry import shape as to_shape

from lakepaper.errors import InputError

AREA_TYPES = ("polygon", "rectangle", "oriented_rectangle", "circle", "mask")
LINE_TYPES = ("line", "linestrip", "point", "points")
#: Vertices of the polygon a circle is approximated by.
CIRCLE_VERTICES = 64


@dataclass(frozen=True)
class Shape:
    """One Labelme shape: its label (as written), type, points ``(n, 2)`` as (x, y), optional mask."""

    label: str
    shape_type: str
    points: np.ndarray
    group_id: int | None = None
    mask: np.ndarray | None = None  # bool (rows, cols) of a ``mask`` shape, over its box


@dataclass(frozen=True)
class Annotation:
    """A Labelme file, read and checked.

    Attributes:
        path: the JSON file.
        version: Labelme's ``version`` ("" in files that have none).
        image_path: the image file found (None: the embedded ``imageData`` is used).
        image_path_raw: ``imagePath`` as written.
        height, width: the image size.
        shapes: every shape, in file order.
        image_data: the embedded image bytes, or None.
    """

    path: Path
    version: str
    image_path: Path | None
    image_path_raw: str
    height: int
    width: int
    shapes: tuple[Shape, ...]
    image_data: bytes | None = field(default=None, repr=False)

    def labels(self) -> list[str]:
        return sorted({s.label for s in self.shapes})

    @property
    def skipped(self) -> list[Shape]:
        """Shapes without an area (lines, points): not rasterised."""
        return [s for s in self.shapes if s.shape_type in LINE_TYPES]

    def read_image(self) -> np.ndarray:
        """The annotated image's pixels (rows, cols[, bands]), from the file or the embedded bytes."""
        from lakepaper.datasets.images import read_pixels

        if self.image_path is not None:
            return read_pixels(self.image_path)[0]
        return _decode_embedded(self.image_data, self.path)


def same_label(a: str, b: str) -> bool:
    """Labels compare case-insensitively and without surrounding spaces ("Gully " == "gully")."""
    return a.strip().casefold() == b.strip().casefold()


def _decode_embedded(data: bytes | None, path: Path) -> np.ndarray:
    from PIL import Image

    if data is None:
        raise InputError(path, "no image: imagePath does not resolve and imageData is empty")
    try:
        with Image.open(_io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im.convert("RGB") if im.mode not in ("RGB", "L") else im)
    except Exception as exc:  # noqa: BLE001 (any decoding failure of the embedded bytes)
        raise InputError(path, f"imageData is not a readable image ({exc})") from exc


def _image_size(path: Path, json_path: Path) -> tuple[int, int]:
    """(rows, cols) of an image file without decoding all of it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (UnidentifiedImageError, OSError):
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            with rasterio.open(path) as src:
                return src.height, src.width
        except RasterioIOError as exc:
            raise InputError(json_path, f"imagePath {path} is not a readable image ({exc})") from exc


def resolve_image_path(json_path: Path, raw: str, search: Sequence[Path] = ()) -> Path | None:
    """The image file a Labelme ``imagePath`` names, or None (see the module doc for the order)."""
    if not raw:
        return None
    win = PureWindowsPath(raw)
    posix = Path(win.as_posix()) if ("\\" in raw or win.drive) else Path(raw)
    candidates = []
    if posix.is_absolute() and not win.drive:
        candidates.append(posix)
    elif not win.drive:
        candidates.append(json_path.parent / posix)
    name = win.name or posix.name
    candidates += [json_path.parent / name, *(Path(s) / name for s in search)]
    for c in candidates:
        if c.is_file():
            return c
    return None


def _shape(obj: dict, index: int, path: Path) -> Shape:
    where = f"shape {index}"
    if not isinstance(obj, dict) or "label" not in obj or "points" not in obj:
        raise InputError(path, f"{where}: expected an object with 'label' and 'points'")
    shape_type = obj.get("shape_type") or "polygon"  # Labelme 3.x: no shape_type, always a polygon
    try:
        pts = np.asarray(obj["points"], dtype=float).reshape(-1, 2)
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"{where} ({obj.get('label')!r}): points are not a list of [x, y] ({exc})") from exc
    if not np.isfinite(pts).all():
        raise InputError(path, f"{where} ({obj.get('label')!r}): points hold NaN or infinity")
    need = {"polygon": 3, "rectangle": 2, "oriented_rectangle": 4, "circle": 2, "mask": 2}.get(shape_type, 1)
    if shape_type not in AREA_TYPES + LINE_TYPES:
        raise InputError(path, f"{where}: unknown shape_type {shape_type!r}; known: {AREA_TYPES + LINE_TYPES}")
    if len(pts) < need:
        raise InputError(path, f"{where} ({obj['label']!r}, {shape_type}): {len(pts)} point(s), needs {need}")
    mask = None
    if shape_type == "mask":
        if not obj.get("mask"):
            raise InputError(path, f"{where}: a 'mask' shape without its mask PNG")
        mask = _decode_embedded(base64.b64decode(obj["mask"]), path).astype(bool)
        if mask.ndim == 3:
            mask = mask.any(axis=-1)
    group = obj.get("group_id")
    return Shape(str(obj["label"]), shape_type, pts, int(group) if group is not None else None, mask)


def read_labelme(path: str | os.PathLike[str], *, search: Sequence[str | os.PathLike[str]] = ()) -> Annotation:
    """Read and check a Labelme JSON file.

    Args:
        path: the ``.json`` file.
        search: more folders to look for the image's file name in.

    Raises:
        InputError: naming the JSON: not JSON, not a Labelme file, a malformed shape, an imagePath
            that names no existing file (and no embedded image), or an image whose size differs from
            ``imageHeight``/``imageWidth``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "Labelme JSON not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list) or "imagePath" not in data:
        raise InputError(path, "not a Labelme file: needs a 'shapes' list and 'imagePath'")
    raw = str(data.get("imagePath") or "")
    image_path = resolve_image_path(path, raw, [Path(s) for s in search])
    image_data = base64.b64decode(data["imageData"]) if data.get("imageData") else None
    if image_path is None and image_data is None:
        raise InputError(
            path,
            f"imagePath {raw!r} names no existing image (looked beside the JSON"
            f"{' and in ' + ', '.join(map(str, search)) if search else ''}) and the JSON embeds none",
        )
    if image_path is not None:
        rows, cols = _image_size(image_path, path)
    else:
        rows, cols = _decode_embedded(image_data, path).shape[:2]
    for key, actual in (("imageHeight", rows), ("imageWidth", cols)):
        if data.get(key) is not None and int(data[key]) != actual:
            raise InputError(path, f"{key} is {data[key]} but the image {image_path or '(embedded)'} has {actual}")
    shapes = tuple(_shape(s, i, path) for i, s in enumerate(data["shapes"]))
    return Annotation(path, str(data.get("version", "")), image_path, raw, rows, cols, shapes, image_data)


def shape_polygon(shape: Shape) -> Polygon | None:
    """The shape's area as a polygon in pixel coordinates (None for lines and points).

    A ``mask`` shape becomes the union of its pixels' squares.
    """
    p = shape.points
    if shape.shape_type == "polygon" or shape.shape_type == "oriented_rectangle":
        poly = Polygon(p)
    elif shape.shape_type == "rectangle":
        (x0, y0), (x1, y1) = p[0], p[1]
        poly = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    elif shape.shape_type == "circle":
        (cx, cy), (px, py) = p[0], p[1]
        poly = shapely.Point(cx, cy).buffer(math.hypot(px - cx, py - cy), quad_segs=CIRCLE_VERTICES // 4)
    elif shape.shape_type == "mask":
        x0, y0 = np.round(p[0]).astype(int)
        geoms = [g for g, v in features.shapes(shape.mask.astype(np.uint8), mask=shape.mask) if v]
        poly = affinity.translate(shapely.unary_union([to_shape(g) for g in geoms]), x0, y0)
    else:
        return None
    return shapely.make_valid(poly) if not poly.is_valid else poly


def class_geometry(annotation: Annotation, label: str) -> shapely.Geometry:
    """Union of the areas of the shapes of class ``label``, in pixel coordinates.

    Raises:
        InputError: the file has no area shape of that class (naming the labels it has).
    """
    polys = [shape_polygon(s) for s in annotation.shapes if same_label(s.label, label)]
    polys = [p for p in polys if p is not None and not p.is_empty and p.area > 0]
    if not polys:
        raise InputError(
            annotation.path,
            f"no polygon of class {label!r} (labels here: {annotation.labels() or 'none'}; "
            f"{len(annotation.skipped)} line/point shape(s) have no area)",
        )
    return shapely.unary_union(polys)


def to_map(geometry: shapely.Geometry, transform: Affine) -> shapely.Geometry:
    """Pixel-coordinate geometry -> map coordinates by a geotransform (exact, affine)."""
    t = transform
    return affinity.affine_transform(geometry, [t.a, t.b, t.d, t.e, t.c, t.f])


def rasterize(
    annotation: Annotation, label: str, *, transform: Affine | None = None
) -> tuple[np.ndarray, shapely.Geometry]:
    """The binary mask (uint8 0/1, the image's size) of class ``label``, and its geometry in map units.

    The polygons are taken to map coordinates by ``transform`` (the image's geotransform; None:
    pixel coordinates) and burnt on that same grid, as ``gdal_rasterize`` does.
    """
    transform = transform or Affine.identity()
    geom = to_map(class_geometry(annotation, label), transform)
    mask = features.rasterize(
        [(geom, 1)], out_shape=(annotation.height, annotation.width), transform=transform, fill=0, dtype=np.uint8
    )
    return mask, geom
