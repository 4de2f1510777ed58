"""lakepaper.world.regions: sample regions of the five types, disjoint, inside their tiles, reproducible."""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pytest

from lakepaper.world import regions as rg
from lakepaper.world.generate import build_truth
from lakepaper.world.sites import SITES_BY_NAME, WorldConfig

TILE_PX = 256
SEED = 11
N_REGIONS = 30
#: one tile of each biome that gives a region type: river (AR, NR), coast (NR), arid (SL), urban (BR), plateau (IL).
TILES = ("T07", "T13", "T09", "T11", "T03")


@pytest.fixture(scope="module")
def truths():
    cfg = WorldConfig(tile_px=TILE_PX)
    out = {}
    for i, name in enumerate(TILES):
        out[name] = build_truth(cfg, i, SITES_BY_NAME[name])
    return out


@pytest.fixture(scope="module")
def regions(truths):
    return rg.build_regions(list(truths.values()), n_regions=N_REGIONS, seed=SEED)


def _window(row):
    return np.s_[row.row_off : row.row_off + row.height, row.col_off : row.col_off + row.width]


def test_columns_and_ids(regions):
    assert list(regions.columns) == [*rg.COLUMNS, "geometry"]
    assert len(regions) == N_REGIONS
    assert regions["region_id"].is_unique
    assert all(re.fullmatch(r"R\d{4}", r) for r in regions["region_id"])
    assert regions.crs.to_epsg() == 4326


def test_every_type_has_enough_regions_for_a_stratified_split(regions):
    counts = regions["region_type"].value_counts()
    assert set(counts.index) == set(rg.REGION_TYPES)
    assert counts.min() >= 5  # 60/20/20 leaves each type in every subset


def test_regions_lie_inside_their_tiles_without_overlap(regions, truths):
    for tile, group in regions.groupby("tile"):
        n_rows, n_cols = truths[tile].shape
        covered = np.zeros((n_rows, n_cols), np.int32)
        for row in group.itertuples():
            assert row.row_off >= 0 and row.col_off >= 0
            assert row.row_off + row.height <= n_rows and row.col_off + row.width <= n_cols
            covered[_window(row)] += 1
        assert covered.max() == 1, tile


def test_region_types_follow_the_landscape(regions, truths):
    for row in regions.itertuples():
        t = truths[row.tile]
        assert row.biome == t.site.biome
        if t.site.biome == "urban":
            assert row.region_type == "BR"
        elif t.site.biome == "plateau":
            assert row.region_type == "IL"
        elif t.site.biome == "arid":
            assert row.region_type == "SL"
        else:
            oxbow = np.isin(t.lake_id, [lake.lake_id for lake in t.lakes if lake.type == "oxbow"])
            near_river = (t.masks["river"] | oxbow)[_window(row)].any()
            assert row.region_type == ("AR" if near_river else "NR"), row.region_id
    for kind, biome in (("BR", "urban"), ("IL", "plateau"), ("SL", "arid")):
        assert set(regions.loc[regions["region_type"] == kind, "biome"]) == {biome}


def test_sizes_spread_over_a_log_range(regions):
    sides = np.concatenate([regions["height"], regions["width"]])
    assert np.all(sides % rg.SIDE_STEP == 0)
    lo, hi = TILE_PX / 20, TILE_PX / 2.5
    assert sides.min() >= rg.SIDE_STEP * round(lo / rg.SIDE_STEP) and sides.max() <= hi
    area = regions["height"] * regions["width"]
    assert area.max() / area.min() >= 10  # about 1.5 orders of magnitude in the paper's Fig. 2b
    np.testing.assert_allclose(regions["area_km2"], area * 1e-4)


def test_regions_hold_lakes_except_a_few_negatives(regions, truths):
    negatives = 0
    for row in regions.itertuples():
        t = truths[row.tile]
        typical = (t.typical_lake_id() > 0)[_window(row)]
        assert row.lake_fraction == pytest.approx(typical.mean())
        if row.lake_fraction == 0:
            negatives += 1
            assert not (t.lake_id > 0)[_window(row)].any()  # no lake even at the maximum extent
        else:
            assert typical.sum() >= rg.MIN_LAKE_PX
    assert 1 <= negatives <= 0.1 * len(regions)


def test_geometry_is_the_rectangle_on_the_tile_grid(regions, truths):
    for row in regions.itertuples():
        t = truths[row.tile]
        assert row.crs_tile == t.crs.to_epsg()
        rect = gpd.GeoSeries([row.geometry], crs=4326).to_crs(row.crs_tile).iloc[0]
        x0, y0 = t.transform @ (row.col_off, row.row_off + row.height)
        x1, y1 = t.transform @ (row.col_off + row.width, row.row_off)
        np.testing.assert_allclose(rect.bounds, (x0, y0, x1, y1), atol=0.01)


def test_same_seed_same_regions_other_seed_other_regions(regions, truths):
    again = rg.build_regions(list(truths.values()), n_regions=N_REGIONS, seed=SEED)
    cols = ["region_id", "tile", "region_type", "row_off", "col_off", "height", "width"]
    assert again[cols].equals(regions[cols])
    assert again.geometry.geom_equals_exact(regions.geometry, tolerance=0).all()
    other = rg.build_regions(list(truths.values()), n_regions=N_REGIONS, seed=SEED + 1)
    assert not other[cols].equals(regions[cols])


def test_allocation_gives_every_type_its_floor():
    providers = {"NR": [0, 1, 2], "AR": [0], "BR": [3], "IL": [4], "SL": [5]}
    for n in (30, 31, 120, 799):
        quota = rg._allocate(n, providers)
        assert sum(quota.values()) == n
        assert min(quota.values()) >= 5
        assert quota["NR"] == max(quota.values())
    assert sum(rg._allocate(7, providers).values()) == 7
    assert rg._allocate(30, {"NR": [0]}) == {"NR": 30}


def test_only_available_types_and_no_regions_asked(truths):
    only_urban = rg.build_regions([truths["T11"]], n_regions=6, seed=SEED)
    assert set(only_urban["region_type"]) == {"BR"} and len(only_urban) == 6
    none = rg.build_regions(list(truths.values()), n_regions=0, seed=SEED)
    assert len(none) == 0 and list(none.columns) == [*rg.COLUMNS, "geometry"]


def test_regions_are_mostly_land_and_lakes_not_open_sea(regions, truths):
    assert len(regions[regions.tile == "T13"]) and truths["T13"].masks["ocean"].any()
    coast_only = rg.build_regions([truths["T13"]], n_regions=8, seed=SEED)  # the coast tile alone: all placed
    assert len(coast_only) == 8
    for row in [*regions.itertuples(), *coast_only.itertuples()]:  # (before the rule: 36 % and 34 % sea)
        assert truths[row.tile].masks["ocean"][_window(row)].mean() <= rg.MAX_SEA_SHARE, row.region_id
