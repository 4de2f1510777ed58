"""The reference datasets of the post-processing, each read by path, in whatever CRS it comes in.

Which datasets there are, their published columns, their simulated and real files and where to get
them is :mod:`lakepaper.references` (the one registry); :data:`REFERENCES` is its stage-05 part
(osm_land, osm_ocean, osm_rivers, grwl, osm_reservoirs, geodar_reservoirs, geodar_dams, glakes, pld,
aridity, floodplain, occurrence). Each is a *path parameter* of notebook 05.

How a path is read
    ``""`` means the simulated world's file (``build/<profile>/00_world/references/...``) when there is
    a world; without one (the ``paper`` profile) the real file under ``references/``
    (:func:`resolve_paths` with ``real=True``, as stage 05 does), or an error naming the parameter.
    ``"none"`` switches a dataset off: the rule that needs it is skipped and the run says so. Any other
    value is a file (vector: GeoPackage, Shapefile, GeoParquet, anything GDAL reads) or, for a raster, a
    GeoTIFF/VRT, a folder of them, or a folder with an ``index.gpkg`` footprint table (columns ``path``
    relative to the folder; how the simulated world and tiled global products are laid out). A missing
    file is a :class:`~lakepaper.errors.ParameterError` naming the parameter.
Columns
    Read under their published names (GLAKES ``Lake_id``/``Lake_type``, PLD ``lake_id``, GRWL
    ``width_m``); a file whose columns are named otherwise is read through the dataset's column mapping
    (:func:`lakepaper.references.columns_for`): the file's column is renamed to the published name. A
    column neither in the file nor mapped is an :class:`~lakepaper.errors.InputError` naming the file,
    the dataset and the column.
CRS
    Vector files are read only within the bounding box of the area at hand, transformed into the
    file's own CRS (so a global file is never read whole), then reprojected into the working CRS.
    A vector file without a CRS is refused (reprojecting it would be a guess). Rasters are warped
    onto the grid asked for (nearest neighbour: categories and thresholds stay exact) through a
    ``WarpedVRT``, which reads only the blocks it needs from a global raster. Only the files whose
    footprint (from ``index.gpkg``, else from each file's bounds) overlaps the grid are opened.
Invalid geometries
    Repaired with ``shapely.make_valid`` (polygonal parts kept for polygon layers); the number
    repaired is counted per dataset in :attr:`ReferenceSet.repaired`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import shapely
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from lakepaper import references as registry
from lakepaper.errors import InputError, ParameterError

#: The stage-05 datasets of the registry (:data:`lakepaper.references.DATASETS`), by parameter name.
REFERENCES: dict[str, registry.Dataset] = registry.for_stage("05_postprocess")

#: Published columns each vector dataset must have (besides its geometry).
COLUMNS: dict[str, tuple[str, ...]] = {n: d.required for n, d in REFERENCES.items() if d.required}

OFF = registry.OFF  # the path value that switches a dataset off

_GEOM_KIND = {"polygons": (3, 6), "lines": (1, 5), "points": (0, 4)}  # shapely type ids kept per kind


def resolve_paths(
    given: Mapping[str, str] | None, default_dir: str | os.PathLike[str] | None, *, real: bool = False
) -> dict[str, Path | None]:
    """Every reference's path: the given one, the default for ``""``, None for ``"none"``.

    Args:
        given: name -> path as in the notebook's parameters (missing names count as ``""``).
        default_dir: the simulated world's ``references`` folder (None: there is none, as in the
            ``paper`` profile).
        real: without ``default_dir``, ``""`` is the real file under ``references/``
            (:func:`lakepaper.references.real_path`); else it is an error.

    Raises:
        ParameterError: an unknown name, a path that does not exist, or ``""`` without a default, naming the
            parameter.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(REFERENCES))
    if unknown:
        raise ParameterError(unknown[0], f"not a reference dataset; known: {', '.join(REFERENCES)}")
    world = Path(default_dir) if default_dir is not None else None
    return {name: registry.resolve(name, given.get(name), world, real=real).path for name in REFERENCES}


# --- vectors -------------------------------------------------------------------------------------


def _file_crs(path: Path, name: str) -> CRS:
    try:
        info = pyogrio.read_info(path)
    except Exception as exc:  # pyogrio raises DataSourceError/DataLayerError; both mean unreadable
        raise InputError(path, f"{name}: not a readable vector file ({exc})") from exc
    if not info.get("crs"):
        raise InputError(path, f"{name}: the file has no CRS, so it cannot be reprojected; add one (e.g. a .prj)")
    return CRS.from_user_input(info["crs"])


def repair(geoms: np.ndarray, kind: str = "polygons") -> tuple[np.ndarray, int]:
    """Make geometries valid; keep the parts of the dataset's kind. Returns (geometries, number repaired)."""
    geoms = np.asarray(geoms, dtype=object)
    bad = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    n_bad = int(bad.sum())
    if n_bad:
        fixed = shapely.make_valid(geoms[bad])
        keep = _GEOM_KIND[kind]
        out = []
        for g in fixed:
            parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in keep and not p.is_empty]
            out.append(shapely.union_all(parts) if len(parts) > 1 else (parts[0] if parts else None))
        geoms = geoms.copy()
        geoms[bad] = np.array(out + [None], dtype=object)[:-1]
    return geoms, n_bad


def read_vector(
    path: str | os.PathLike[str],
    name: str,
    *,
    bounds: Sequence[float],
    crs,
    columns: Sequence[str] = (),
    kind: str = "polygons",
    mapping: Mapping[str, str] | None = None,
) -> tuple[gpd.GeoDataFrame, int]:
    """The features of a vector file within ``bounds`` (given in ``crs``), reprojected into ``crs``.

    Args:
        columns: the published columns wanted.
        mapping: published name -> the file's column (:func:`lakepaper.references.columns_for`); a
            published name not in it is read as it is.

    Returns:
        (frame with ``columns`` under their published names and valid geometries in ``crs``, number of
        geometries repaired).

    Raises:
        InputError: unreadable file, no CRS, or a required column missing (naming the file, the dataset,
            the published column and the file's column it was looked for under).
    """
    path = Path(path)
    file_crs = _file_crs(path, name)
    crs = CRS.from_user_input(crs)
    mapping = dict(mapping or {})
    wanted = {c: mapping.get(c, c) for c in columns}  # published -> in the file
    try:
        fields = list(pyogrio.read_info(path)["fields"])
    except Exception as exc:
        raise InputError(path, f"{name}: cannot read ({exc})") from exc
    missing = [c for c, f in wanted.items() if f not in fields]
    if missing:
        how = ", ".join(f"{c!r}" + (f" (mapped to {wanted[c]!r})" if wanted[c] != c else "") for c in missing)
        raise InputError(
            path,
            f"{name}: column {how} missing; the file has {fields}. Rename it, or map it: "
            f"LAKEPAPER_REF_{name.upper()}_COLUMNS='{missing[0]}=<the file's column>'",
        )
    bbox = tuple(bounds) if file_crs == crs else transform_bounds(crs, file_crs, *bounds, densify_pts=21)
    try:
        frame = pyogrio.read_dataframe(path, bbox=bbox, columns=list(wanted.values()) or None)
    except Exception as exc:
        raise InputError(path, f"{name}: cannot read ({exc})") from exc
    frame = frame.rename(columns={f: c for c, f in wanted.items() if f != c})
    if frame.crs is None:
        frame = frame.set_crs(file_crs)
    geoms, n_bad = repair(frame.geometry.values, kind)
    frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs))
    frame = frame[~frame.geometry.isna() & ~frame.geometry.is_empty]
    if frame.crs != crs:
        frame = frame.to_crs(crs)
    return frame.reset_index(drop=True), n_bad


# --- rasters -------------------------------------------------------------------------------------


@dataclass
class RasterSource:
    """A raster dataset made of one or many files, warped on demand onto any grid.

    ``path`` is a GeoTIFF/VRT, a folder of them, or a folder with an ``index.gpkg`` (``path`` column
    relative to the folder). Each file's footprint is kept in EPSG:4326 so that only the files
    overlapping a request are opened.
    """

    path: Path
    name: str
    files: list[Path] = field(default_factory=list)
    footprints: list[tuple[float, float, float, float]] = field(default_factory=list)
    #: the published nodata value, used for a file that does not tag its own (GSW occurrence: 255)
    nodata: float | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], name: str) -> RasterSource:
        path = Path(path)
        spec = registry.DATASETS[name].raster if name in registry.DATASETS else None
        src = cls(path, name, nodata=spec.nodata if spec is not None else None)
        if path.is_dir():
            index = path / "index.gpkg"
            if index.exists():
                table = gpd.read_file(index)
                if "path" not in table.columns or table.crs is None:
                    raise InputError(index, f"{name}: a footprint table needs a 'path' column and a CRS")
                bounds = shapely.bounds(table.to_crs(4326).geometry.values)
                for rel, fp in zip(table["path"], bounds, strict=True):
                    # paths relative to the folder, or to its parent (the simulated world's layout)
                    f = path / rel if (path / rel).exists() else path.parent / rel
                    if not f.exists():
                        raise InputError(index, f"{name}: listed file {rel} not found")
                    src.files.append(f)
                    src.footprints.append(tuple(fp))
            else:
                for f in sorted([*path.glob("*.tif"), *path.glob("*.tiff"), *path.glob("*.vrt")]):
                    src._add(f)
            if not src.files:
                raise InputError(path, f"{name}: no raster files in this folder")
        else:
            src._add(path)
        return src

    def _add(self, f: Path) -> None:
        try:
            with rasterio.open(f) as ds:
                if ds.crs is None:
                    raise InputError(f, f"{self.name}: raster without a CRS")
                b = ds.bounds
                fp = b if ds.crs.to_epsg() == 4326 else transform_bounds(ds.crs, "EPSG:4326", *b, densify_pts=21)
        except RasterioIOError as exc:
            raise InputError(f, f"{self.name}: not a readable raster ({exc})") from exc
        self.files.append(f)
        self.footprints.append(tuple(fp))

    def read(
        self, shape: tuple[int, int], transform: Affine, crs, *, resampling: Resampling = Resampling.nearest
    ) -> np.ma.MaskedArray:
        """Band 1 of the dataset on the grid (shape, transform, crs); masked where no file has data."""
        h, w = shape
        left, top = transform.c, transform.f
        right, bottom = left + w * transform.a, top + h * transform.e
        want = transform_bounds(
            crs, "EPSG:4326", min(left, right), min(top, bottom), max(left, right), max(top, bottom), densify_pts=21
        )
        out = None
        for f, fp in zip(self.files, self.footprints, strict=True):
            if fp[0] > want[2] or fp[2] < want[0] or fp[1] > want[3] or fp[3] < want[1]:
                continue
            with (
                rasterio.open(f) as ds,
                WarpedVRT(ds, crs=crs, transform=transform, width=w, height=h, resampling=resampling) as vrt,
            ):
                if ds.nodata is not None:  # half the cost of a masked read, which warps the mask as well
                    data = vrt.read(1)
                    arr = np.ma.array(data, mask=data == ds.nodata)
                else:
                    arr = vrt.read(1, masked=True)
                    if self.nodata is not None:  # untagged file: the published nodata value
                        arr = np.ma.array(arr.data, mask=np.ma.getmaskarray(arr) | (arr.data == self.nodata))
            if out is None:
                out = arr
            else:
                fill = np.ma.getmaskarray(out) & ~np.ma.getmaskarray(arr)
                out = np.ma.array(np.where(fill, arr.data, out.data), mask=np.ma.getmaskarray(out) & ~fill)
        if out is None:
            return np.ma.masked_all(shape, dtype=np.float32)
        return out


# --- what one partition needs ----------------------------------------------------------------------


@dataclass
class ReferenceSet:
    """Every reference dataset, by path, with per-dataset counters of what was read and repaired."""

    paths: dict[str, Path | None]
    repaired: dict[str, int] = field(default_factory=dict)
    _rasters: dict[str, RasterSource] = field(default_factory=dict)
    #: name -> {published column: the file's column}: overrides of the registry's mapping
    #: (:func:`lakepaper.references.columns_for`, which also reads ``$LAKEPAPER_REF_<NAME>_COLUMNS``).
    columns: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.columns = {n: registry.columns_for(n, self.columns.get(n)) for n in self.paths if n in REFERENCES}

    def on(self, name: str) -> bool:
        return self.paths.get(name) is not None

    def vector(self, name: str, *, bounds: Sequence[float], crs, columns: Sequence[str] | None = None):
        """The dataset within ``bounds`` (in ``crs``) in ``crs``, its columns under their published names;
        an empty frame when switched off."""
        kind = REFERENCES[name].kind
        cols = tuple(columns) if columns is not None else COLUMNS.get(name, ())
        if not self.on(name):
            return gpd.GeoDataFrame({c: [] for c in cols}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
        frame, n_bad = read_vector(
            self.paths[name], name, bounds=bounds, crs=crs, columns=cols, kind=kind, mapping=self.columns.get(name)
        )
        self.repaired[name] = self.repaired.get(name, 0) + n_bad
        return frame

    def raster(self, name: str, shape: tuple[int, int], transform: Affine, crs) -> np.ma.MaskedArray | None:
        """The dataset warped onto a grid (nearest), or None when switched off."""
        if not self.on(name):
            return None
        if name not in self._rasters:
            self._rasters[name] = RasterSource.open(self.paths[name], name)
        return self._rasters[name].read(shape, transform, crs)


def river_polygons(rivers: gpd.GeoDataFrame, grwl: gpd.GeoDataFrame, *, width_column: str = "width_m") -> np.ndarray:
    """The river mask as polygons in the (metric) CRS of the inputs: OSM river areas plus GRWL buffered.

    GRWL centre lines are buffered by half their width (flat caps would leave gaps at segment joints,
    so round caps are used). Lines without a positive width are dropped.
    """
    parts = [np.asarray(rivers.geometry.values, dtype=object)]
    if len(grwl):
        width = np.asarray(grwl[width_column], dtype=float)
        ok = np.isfinite(width) & (width > 0)
        parts.append(shapely.buffer(np.asarray(grwl.geometry.values, dtype=object)[ok], width[ok] / 2))
    return np.concatenate(parts) if parts else np.empty(0, dtype=object)
