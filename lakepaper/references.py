"""The one registry of the reference datasets (stages 05-08), in their published schemas.

Each :class:`Dataset` says what the file is, the columns the compendium reads from it under their
*published* names and types, where the simulated world writes its look-alike
(``build/<profile>/00_world/references/<simulated>``, the world's ``references.py``), where the
real file is laid out under the references folder (``$LAKEPAPER_REFERENCES``, default
``<repo>/references``; :mod:`lakepaper.prereqs` checks it), where to download it and its checksum.

==================  =========  ================================================  ==================================
name                kind       columns read (published name: type)               real file under references/
==================  =========  ================================================  ==================================
osm_land            polygons   (geometry only)                                   osm/land-polygons-split-4326/...
osm_ocean           polygons   (geometry only)                                   osm/water-polygons-split-4326/...
osm_rivers          polygons   (geometry only; Geofabrik layout osm_id, fclass)  osm/osm_rivers.gpkg
grwl                lines      ``width_m``: float (m)                            grwl/grwl_centerlines.gpkg
osm_reservoirs      polygons   (geometry only; Geofabrik layout osm_id, fclass)  osm/osm_reservoirs.gpkg
geodar_reservoirs   polygons   (geometry only; ``id_v11``: int)                  geodar/GeoDAR_v11_reservoirs.shp
geodar_dams         points     (geometry only; ``id_v11``: int)                  geodar/GeoDAR_v11_dams.shp
glakes              polygons   ``Lake_id``: int, ``Lake_type``: int (1 natural,  glakes/glakes.gpkg
                               2 reservoir), ``Area_bound``: float (km2)
pld                 polygons   ``lake_id``: int, ``ref_area``: float (km2)       pld/pld.gpkg
hydrolakes          polygons   ``Hylak_id``: int, ``Lake_area``: float (km2)     hydrolakes/HydroLAKES_polys_v10.shp
aridity             raster     int32 AI x 10000; nodata from the file's tag      aridity/ai_v3_yr.tif
floodplain          raster     uint8 1 floodplain, 0 not                         shift/ (GeoTIFF tiles)
occurrence          raster     uint8 percent 0-100, 255 no data                  gsw/occurrence/ (10 x 10 deg tiles)
==================  =========  ================================================  ==================================

Sources of the schemas (the published documentation of each dataset):

* GLAKES: Pi, X. et al. (2022), Nature Communications 13, 5777, doi:10.1038/s41467-022-33239-3, and its
  data record (``Lake_id``, ``Area_bound`` = area of the maximum-extent boundary in km2, ``Lake_type``).
  Not verified here against a downloaded file; a release with other names is read through a column mapping.
* PLD: SWOT Prior Lake Database product description (CNES/JPL, SWOT-IS-CDFMDFPLD), ``lake_id`` (10-digit
  int) and ``ref_area`` (km2).
* HydroLAKES v1.0 technical documentation (Messager et al., 2016): ``Hylak_id`` (int), ``Lake_area`` (km2),
  ``Lake_type`` (1 lake, 2 reservoir, 3 lake control).
* GRWL v01.01 vector product (Allen & Pavelsky, 2018, zenodo 1297434): centre-line segments with
  ``width_m`` (m), ``nchannels``, ``segmentID``, ``segmentInd``, ``lakeFlag``, ``elev_m``.
* GeoDAR v1.1 (Wang et al., 2022, ESSD 14, 1869-1899, zenodo 6163413): dams and reservoirs keyed by
  ``id_v11``; dams carry ``id_grd_v13``, ``lat``, ``lon``, ``qa_rank``, ``rv_mcm_v11``.
* Global Aridity Index v3 (Zomer, Xu & Trabucco, 2022, figshare 7504448): AI multiplied by 10,000 and
  distributed as integers; 30 arc-seconds GeoTIFF. The nodata value is read from the file itself.
* GSW occurrence (Pekel et al., 2016; JRC data users guide): uint8 0-100 percent, 255 no data, 10 x 10 deg tiles.
* SHIFT floodplain (Zheng, Lin & Yin, 2024, ESSD 16, 3873-3891): 1 floodplain, 0 not.
* OSM land/water polygons (osmdata.openstreetmap.de, split, EPSG:4326); OSM river areas and reservoirs as
  Geofabrik's ``gis_osm_water_a_free`` layer (``osm_id``, ``code``, ``fclass`` river/reservoir, ``name``).

Column mapping
    The code reads every column under its published name (the *role*). A file whose columns are named
    otherwise is read through a mapping ``{published name: the file's column}``: by the Python API
    (``ReferenceSet(paths, columns={"glakes": {"Lake_id": "ID"}})``, ``compare.read_catalogue(...,
    columns=...)``), or for a stage run by the environment variable ``LAKEPAPER_REF_<NAME>_COLUMNS``
    (e.g. ``LAKEPAPER_REF_GLAKES_COLUMNS="Lake_id=ID,Lake_type=TYPE"``; :func:`columns_for`). A column
    that is neither in the file nor mapped is an :class:`~lakepaper.errors.InputError` naming the file,
    the dataset and the missing published column.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakepaper.errors import ParameterError

OFF = "none"  # the path value that switches a dataset off


@dataclass(frozen=True)
class Column:
    """One published column: its name in the release, its type, what it holds."""

    name: str
    dtype: str  # "int", "float", "str"
    meaning: str


@dataclass(frozen=True)
class Raster:
    """How a raster dataset stores its values."""

    dtype: str
    values: str
    scale: float = 1.0  # stored value = physical value x scale
    nodata: float | None = None  # as published; None: read from the file's own tag


@dataclass(frozen=True)
class Dataset:
    """One reference dataset: its published schema, its simulated and real locations, where to get it."""

    name: str  # the stage parameter it is passed as
    title: str
    kind: str  # polygons, lines, points, raster
    real: str  # path under the references folder
    url: str
    how: str  # what to download and how to lay it out
    cite: str
    simulated: str | None = None  # path under 00_world/references (None: the world has none)
    columns: tuple[Column, ...] = ()  # the published columns the code reads (besides geometry)
    keys: tuple[Column, ...] = ()  # further published columns, documented only
    raster: Raster | None = None
    id_col: str | None = None  # for a lake catalogue (stage 08): the id and area (km2) columns
    area_col: str | None = None
    sha256: str | None = None  # of the file as laid out; None: recorded on first download
    folder: bool = False  # a folder of tiles rather than one file
    stages: tuple[str, ...] = ("05_postprocess",)
    optional: bool = False  # not asked for by the prerequisite check

    @property
    def default(self) -> str:
        """The real file's path under the references folder (the name :mod:`lakepaper.prereqs` used)."""
        return self.real

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


_OSM = "OpenStreetMap contributors (ODbL)"
_GEOFABRIK = (
    Column("osm_id", "str", "OSM object id"),
    Column("fclass", "str", "feature class (river, reservoir, ...)"),
    Column("name", "str", "name"),
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "osm_land",
            "OSM land polygons (split, WGS84)",
            "polygons",
            "osm/land-polygons-split-4326/land_polygons.shp",
            "https://osmdata.openstreetmap.de/data/land-polygons.html",
            "download land-polygons-split-4326.zip and unzip it here",
            _OSM,
            simulated="osm_land_polygons.gpkg",
        ),
        Dataset(
            "osm_ocean",
            "OSM water polygons (the ocean, split, WGS84)",
            "polygons",
            "osm/water-polygons-split-4326/water_polygons.shp",
            "https://osmdata.openstreetmap.de/data/water-polygons.html",
            "download water-polygons-split-4326.zip and unzip it here",
            _OSM,
            simulated="osm_water_polygons.gpkg",
        ),
        Dataset(
            "osm_rivers",
            "OSM river areas",
            "polygons",
            "osm/osm_rivers.gpkg",
            "https://planet.openstreetmap.org/",
            "extract river-area polygons (water=river, waterway=riverbank) from the planet file, e.g. with "
            "`osmium tags-filter` then `ogr2ogr`, into one GeoPackage",
            _OSM,
            simulated="osm_rivers.gpkg",
            keys=_GEOFABRIK,
        ),
        Dataset(
            "osm_reservoirs",
            "OSM reservoirs",
            "polygons",
            "osm/osm_reservoirs.gpkg",
            "https://planet.openstreetmap.org/",
            "extract reservoir polygons (water=reservoir, landuse=reservoir) from the planet file into one GeoPackage",
            _OSM,
            simulated="osm_reservoirs.gpkg",
            keys=_GEOFABRIK,
        ),
        Dataset(
            "grwl",
            "GRWL river centre lines v01.01 (with width_m)",
            "lines",
            "grwl/grwl_centerlines.gpkg",
            "https://doi.org/10.5281/zenodo.1297434",
            "download the GRWL vector archive and merge its tile shapefiles into one GeoPackage (ogr2ogr -append)",
            "Allen & Pavelsky (2018), Science 361, 585-588",
            simulated="grwl_centerlines.gpkg",
            columns=(Column("width_m", "float", "wetted river width (m)"),),
            keys=(
                Column("segmentID", "int", "segment id"),
                Column("nchannels", "int", "number of channels"),
                Column("lakeFlag", "int", "0 river, 1 lake/reservoir, 2 tidal, 3 canal"),
            ),
        ),
        Dataset(
            "geodar_reservoirs",
            "GeoDAR v1.1 reservoir polygons",
            "polygons",
            "geodar/GeoDAR_v11_reservoirs.shp",
            "https://doi.org/10.5281/zenodo.6163413",
            "download GeoDAR v1.0/v1.1 and unzip the v1.1 reservoirs shapefile here",
            "Wang et al. (2022), ESSD 14, 1869-1899",
            simulated="geodar_reservoirs.gpkg",
            keys=(Column("id_v11", "int", "GeoDAR v1.1 id, shared with the dam"),),
        ),
        Dataset(
            "geodar_dams",
            "GeoDAR v1.1 dam points",
            "points",
            "geodar/GeoDAR_v11_dams.shp",
            "https://doi.org/10.5281/zenodo.6163413",
            "from the same GeoDAR archive, the v1.1 dams shapefile",
            "Wang et al. (2022), ESSD 14, 1869-1899",
            simulated="geodar_dams.gpkg",
            keys=(
                Column("id_v11", "int", "GeoDAR v1.1 id"),
                Column("id_grd_v13", "int", "GRanD v1.3 id (0: none)"),
                Column("qa_rank", "str", "georeferencing quality rank"),
            ),
        ),
        Dataset(
            "glakes",
            "GLAKES lakes (Lake_id, Lake_type, Area_bound)",
            "polygons",
            "glakes/glakes.gpkg",
            "https://doi.org/10.1038/s41467-022-33239-3",
            "follow the paper's Data availability statement to the GLAKES polygons; merge them into one file that "
            "keeps Lake_id, Lake_type and Area_bound",
            "Pi et al. (2022), Nature Communications 13",
            simulated="glakes.shp",
            columns=(
                Column("Lake_id", "int", "lake id"),
                Column("Lake_type", "int", "1 natural lake, 2 reservoir"),
            ),
            keys=(Column("Area_bound", "float", "area of the maximum-extent boundary (km2)"),),
            id_col="Lake_id",
            area_col="Area_bound",
            stages=("05_postprocess", "08_comparison"),
        ),
        Dataset(
            "pld",
            "SWOT Prior Lake Database (lake_id, ref_area)",
            "polygons",
            "pld/pld.gpkg",
            "https://hydroweb.next.theia-land.fr/",
            "download the PLD (free account) and merge its polygons into one file that keeps lake_id and ref_area",
            "Wang et al. (2023), SWOT Prior Lake Database",
            simulated="pld.shp",
            columns=(Column("lake_id", "int", "10-digit PLD lake id"),),
            keys=(Column("ref_area", "float", "reference area (km2)"),),
            id_col="lake_id",
            area_col="ref_area",
            stages=("05_postprocess", "08_comparison"),
        ),
        Dataset(
            "hydrolakes",
            "HydroLAKES v1.0 polygons (Hylak_id, Lake_area)",
            "polygons",
            "hydrolakes/HydroLAKES_polys_v10.shp",
            "https://www.hydrosheds.org/products/hydrolakes",
            "download HydroLAKES_polys_v10_shp.zip and unzip the shapefile here",
            "Messager et al. (2016), Nature Communications 7, 13603",
            keys=(
                Column("Hylak_id", "int", "lake id"),
                Column("Lake_area", "float", "lake area (km2)"),
                Column("Lake_type", "int", "1 lake, 2 reservoir, 3 lake control"),
            ),
            id_col="Hylak_id",
            area_col="Lake_area",
            stages=("08_comparison",),
            optional=True,
        ),
        Dataset(
            "aridity",
            "Global Aridity Index v3 (annual, AI x 10000)",
            "raster",
            "aridity/ai_v3_yr.tif",
            "https://doi.org/10.6084/m9.figshare.7504448",
            "download the annual Global-AI archive and unzip the annual aridity index GeoTIFF here",
            "Zomer, Xu & Trabucco (2022), Scientific Data 9, 409",
            simulated="aridity_index",
            raster=Raster("int32", "aridity index x 10000 (arid: AI < 0.2)", scale=10000),
        ),
        Dataset(
            "floodplain",
            "SHIFT geomorphic floodplain, 90 m",
            "raster",
            "shift",
            "https://doi.org/10.5281/zenodo.10440608",
            "download the SHIFT 90 m GeoTIFF(s) into this folder (1 floodplain, 0 not)",
            "Zheng, Lin & Yin (2024), ESSD 16, 3873-3891",
            simulated="floodplain",
            raster=Raster("uint8", "1 floodplain, 0 not floodplain"),
            folder=True,
        ),
        Dataset(
            "occurrence",
            "Global Surface Water occurrence",
            "raster",
            "gsw/occurrence",
            "https://global-surface-water.appspot.com/download",
            "download the occurrence tiles (10 x 10 degree GeoTIFFs) into this folder",
            "Pekel et al. (2016), Nature 540, 418-422",
            simulated="occurrence",
            raster=Raster("uint8", "percent of observations with water, 0-100", nodata=255),
            folder=True,
        ),
    )
}


def for_stage(stage: str) -> dict[str, Dataset]:
    """The datasets a stage takes as parameters, in registry order."""
    return {n: d for n, d in DATASETS.items() if stage in d.stages}


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise ParameterError(name, f"not a reference dataset; known: {', '.join(DATASETS)}")
    return DATASETS[name]


# --- where the files are -----------------------------------------------------------------------------


def references_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the real files: ``given``, else ``$LAKEPAPER_REFERENCES``, else ``<repo>/references``."""
    from lakepaper import paths

    return Path(given or os.environ.get("LAKEPAPER_REFERENCES") or paths.ROOT / "references").expanduser()


def real_path(d: Dataset | str, folder: Path | None = None) -> Path:
    """The real file of a dataset: ``$LAKEPAPER_REF_<NAME>`` if set, else its place under the folder."""
    d = get(d) if isinstance(d, str) else d
    override = os.environ.get(f"LAKEPAPER_REF_{d.name.upper()}")
    return Path(override).expanduser() if override else (folder or references_dir()) / d.real


def simulated_path(d: Dataset | str, world_references: Path) -> Path | None:
    """The simulated world's file of a dataset (None where the world makes none)."""
    d = get(d) if isinstance(d, str) else d
    return None if d.simulated is None else Path(world_references) / d.simulated


def default_path(d: Dataset | str, world_references: Path | None) -> Path | None:
    """What ``""`` means: the simulated file when there is a world (``world_references``), else the real one."""
    d = get(d) if isinstance(d, str) else d
    if world_references is not None:
        return simulated_path(d, world_references)
    return real_path(d)


# --- columns -----------------------------------------------------------------------------------------


def parse_mapping(text: str, name: str = "columns") -> dict[str, str]:
    """``"Lake_id=ID,Lake_type=TYPE"`` -> ``{"Lake_id": "ID", "Lake_type": "TYPE"}``."""
    out = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        published, sep, column = (s.strip() for s in part.partition("="))
        if not sep or not published or not column:
            raise ParameterError(name, f"expected 'published=column[,...]', got {part!r}")
        out[published] = column
    return out


def column_overrides(given: Mapping[str, Any] | None, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """A stage's ``reference_columns`` parameter checked: dataset name -> {published column: file's column}.

    Raises:
        ParameterError: naming ``reference_columns``, for a dataset the stage does not read or a mapping
            that is not a dict of strings.
    """
    out: dict[str, dict[str, str]] = {}
    for name, mapping in (given or {}).items():
        if name not in names:
            raise ParameterError(
                "reference_columns", f"{name!r} is not a reference dataset of this stage; it reads: {', '.join(names)}"
            )
        if not isinstance(mapping, Mapping) or not all(isinstance(v, str) for v in mapping.values()):
            raise ParameterError(
                "reference_columns", f"{name}: give {{published column: your column}}, got {mapping!r}"
            )
        out[name] = {str(k): v for k, v in mapping.items()}
    return out


def columns_for(name: str, override: Mapping[str, str] | None = None) -> dict[str, str]:
    """The column mapping of a dataset: published name -> the file's column.

    Starts from the identity on the published columns (:attr:`Dataset.columns`, ``keys``, ``id_col``,
    ``area_col``), then ``$LAKEPAPER_REF_<NAME>_COLUMNS``, then ``override``. A published name the registry
    does not know for this dataset is refused (a typo would otherwise be ignored).
    """
    d = get(name)
    known = {c.name for c in (*d.columns, *d.keys)} | {c for c in (d.id_col, d.area_col) if c}
    out = {c: c for c in sorted(known)}
    env = f"LAKEPAPER_REF_{name.upper()}_COLUMNS"
    for source, given in ((env, parse_mapping(os.environ.get(env, ""), env)), (f"{name} columns", override or {})):
        for published, column in given.items():
            if published not in known:
                raise ParameterError(
                    source, f"{published!r} is not a published column of {name}; known: {', '.join(sorted(known))}"
                )
            out[published] = column
    return out


def overridden(mapping: Mapping[str, str]) -> dict[str, str]:
    """The entries of a mapping that differ from the published names (what a manifest records)."""
    return {k: v for k, v in mapping.items() if k != v}


@dataclass
class Resolved:
    """A dataset as a run uses it: its path (None: switched off), origin and column mapping."""

    dataset: Dataset
    path: Path | None
    origin: str  # "given", "simulated", "real", "off"
    columns: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict | None:
        if self.path is None:
            return None
        files = [self.path] if self.path.is_file() else sorted(f for f in self.path.rglob("*") if f.is_file())
        out = {"path": str(self.path), "origin": self.origin, "bytes": sum(f.stat().st_size for f in files)}
        if overridden(self.columns):
            out["columns"] = overridden(self.columns)
        return out


def resolve(
    name: str,
    value: str | os.PathLike[str] | None,
    world_references: Path | None,
    *,
    real: bool = True,
    must_exist: bool = True,
    columns: Mapping[str, str] | None = None,
) -> Resolved:
    """One dataset's path from a parameter value: a path, ``""`` (the default), or ``"none"`` (off).

    ``""`` is the simulated world's file when ``world_references`` is given (there is a world and the
    profile is not ``paper``), else (``real``) the real file under the references folder.

    Raises:
        ParameterError: naming the parameter, when the file does not exist (``must_exist``) or ``""`` has
            no default (a dataset the simulated world does not make, or ``real=False`` without a world).
    """
    d = get(name)
    value = str(value or "")
    columns = columns_for(name, columns)
    if value.lower() == OFF:
        return Resolved(d, None, "off", columns)
    if value:
        path, origin = Path(value).expanduser(), "given"
    elif world_references is not None and d.simulated is not None:
        path, origin = simulated_path(d, world_references), "simulated"
    elif real:
        path, origin = real_path(d), "real"
    else:
        raise ParameterError(name, f"no simulated {d.title} in this run: give the file's path (or {OFF!r})")
    if must_exist and not path.exists():
        where = "" if origin != "real" else f" (get it: {d.url}; {d.how}; `lakepaper prereqs --profile paper`)"
        raise ParameterError(name, f"{d.title}: file not found: {path}{where}")
    return Resolved(d, path, origin, columns)
