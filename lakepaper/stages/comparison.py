"""Stage 08: this product against GLAKES and PLD (paper section 3.3, Figs. 7-9).

Reads stage 05's product (or any catalogue given as ``product``) and the two references, both from the
one registry :mod:`lakepaper.references` (published columns GLAKES ``Lake_id``/``Area_bound``, PLD
``lake_id``/``ref_area``, HydroLAKES ``Hylak_id``/``Lake_area``; a column mapping by
``$LAKEPAPER_REF_<NAME>_COLUMNS``). "The simulated world" is the imagery source stage 01 recorded
(:mod:`lakepaper.stages.provenance`; a build that recorded none: a world exists and the profile is not
``paper``). ``""`` for ``glakes`` or ``pld`` means the simulated world's ``references/`` on the simulated
world, else the real files laid out under ``references/`` (``make prereqs PROFILE=paper``). On the
simulated world its truth lakes are compared too (``truth = ""``; elsewhere no truth).

Fig. 8 shows ``fig8_regions`` when given, else the profile's (``params.fig8_regions``: the paper profile has
the paper's four places, a-d; the simulated profiles have none and show one tile per kind of landscape
over stage 01's composite, :func:`lakepaper.figures.comparison.world_panels`, the tiles read from stage
01's ``tile_grid.gpkg`` and their kinds from stage 00's ``tiles.geojson``). A region without a given
basemap takes the first composite tile of stage 01's grid that intersects it. Fig. 9 leaves out the
Caspian Sea as the paper does (``exclude_caspian``: the lakes of at least ``fig9_exclude_min_km2`` whose
point lies in ``fig9_exclude_box``), and every lake whose point lies in ``exclude_box`` when given.

Writes ``fig7_size_groups.csv``, ``unmatched.csv``, ``fig9_profile_lon.csv``, ``fig9_profile_lat.csv``,
``fig9c_cells_0.01-0.1km2.csv`` and Figs. 7, 8 and 9. The comparisons are :mod:`lakepaper.compare`'s.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from lakepaper import compare
from lakepaper import references as registry
from lakepaper.figures.comparison import fig7, fig8, fig9, region_panels, world_panels
from lakepaper.stages import provenance
from lakepaper.stages.context import Context, Result

#: The method constants this stage uses.
CONSTANTS = ("grid_deg", "size_groups_km2", "fig8_regions", "fig9_exclude_box", "fig9_exclude_min_km2")

#: Fig. 9c's size range (km2): the per-cell differences of the lakes of 0.01-0.1 km2.
FIG9C_RANGE = (0.01, 0.1)


def _references(ctx: Context, world: Path, simulated: bool) -> dict[str, registry.Resolved]:
    """GLAKES, PLD and (when given) HydroLAKES from the one registry (:mod:`lakepaper.references`): as
    given, else the simulated world's (``simulated``: the imagery is the world), else the real ones under
    references/."""
    folder = world / "references" if simulated else None
    columns = registry.column_overrides(ctx.args["reference_columns"], ("glakes", "pld", "hydrolakes"))
    out = {
        name: registry.resolve(name, ctx.args[name], folder, real=True, columns=columns.get(name))
        for name in ("glakes", "pld")
    }
    if ctx.args["hydrolakes"] and ctx.args["hydrolakes"].lower() != registry.OFF:  # optional: "" = none
        out["hydrolakes"] = registry.resolve(
            "hydrolakes", ctx.args["hydrolakes"], None, columns=columns.get("hydrolakes")
        )
    return out


def _tile_grid(composite: Path | None) -> gpd.GeoDataFrame | None:
    """Stage 01's tile grid (``tile``, ``path`` relative to its folder, EPSG:4326 footprints), or None."""
    if composite is None or not (composite / "tile_grid.gpkg").exists():
        return None
    grid = gpd.read_file(composite / "tile_grid.gpkg")
    grid["path"] = [str(composite / p) for p in grid["path"]]
    return grid.to_crs(4326)


def _basemaps_from_grid(regions: list, given: list, grid: gpd.GeoDataFrame | None) -> list[str]:
    """One basemap per region: the given one, else the first composite tile of the grid that intersects it."""
    out = []
    for i, (_, *box) in enumerate(regions):
        if i < len(given) and given[i]:
            out.append(given[i])
            continue
        hits = grid[grid.intersects(shapely.box(*box))] if grid is not None else []
        out.append(str(hits["path"].iloc[0]) if len(hits) else "")
    return out


def _world_kinds(world: Path, grid: gpd.GeoDataFrame) -> pd.DataFrame:
    """The composite tiles with the kind of landscape of each (stage 00's ``tiles.geojson``: biome, lat)."""
    path = world / "tiles.geojson"
    if not path.exists():
        return pd.DataFrame(columns=["tile", "biome", "lat", "path"])
    kinds = pd.DataFrame(gpd.read_file(path).drop(columns="geometry"))[["tile", "biome", "lat"]]
    return kinds.merge(pd.DataFrame(grid[["tile", "path"]]), on="tile", how="inner")


def _fig8_panels(ctx: Context, world: Path, cats: dict, name: str, simulated: bool) -> tuple[list, list]:
    """Fig. 8's panels (the given regions, else the profile's, else on the simulated world one tile per
    kind over stage 01's composite) and the regions drawn (title + box; [] for the world's tiles)."""
    a = ctx.args
    composite = ctx.upstream("01_composite", required=False)
    grid = _tile_grid(composite)
    regions = [list(r) for r in (a["fig8_regions"] or ctx.params["fig8_regions"])]
    if regions:
        basemaps = _basemaps_from_grid(regions, list(a["fig8_basemaps"]), grid)
        return region_panels(regions, basemaps, cats, right=(name,)), regions
    if not simulated or grid is None:
        return [], []
    return world_panels(_world_kinds(world, grid), None, cats, right=(name,)), []


def _fig9_catalogues(ctx: Context, cats: dict, names: tuple[str, str]) -> dict:
    """The two catalogues of Fig. 9 without the Caspian Sea (the paper's) and the lakes of ``exclude_box``."""
    a, P = ctx.args, ctx.params
    pair = {n: cats[n] for n in names}
    if a["exclude_caspian"]:
        box, min_km2 = tuple(P["fig9_exclude_box"]), P["fig9_exclude_min_km2"]
        before = {n: len(c) for n, c in pair.items()}
        pair = {n: _drop_large_in_box(c, box, min_km2) for n, c in pair.items()}
        left = {n: before[n] - len(c) for n, c in pair.items()}
        if any(left.values()):
            ctx.say(
                f"left out of Fig. 9 as the paper does (the Caspian Sea: lakes >= {min_km2:g} km2 with their point "
                f"inside {box}): " + ", ".join(f"{n} {k}" for n, k in left.items())
            )
    box = tuple(a["exclude_box"]) if a["exclude_box"] else None
    if box:
        before = {n: len(c) for n, c in pair.items()}
        pair = {n: compare.drop_in_box(c, box) for n, c in pair.items()}
        left_out = ", ".join(f"{n} {before[n] - len(c)}" for n, c in pair.items())
        ctx.say(f"left out of Fig. 9 (point inside the box {box}): {left_out}")
    return pair


def _below_pld(product: gpd.GeoDataFrame, pld: gpd.GeoDataFrame, tiny_km2: float = 0.01) -> dict:
    """The product's lakes below PLD's minimum size: all of them (the paper's "not in PLD") and those that
    touch no PLD polygon, count and area (km2)."""
    u = compare.unmatched(product, pld, (tiny_km2,)).iloc[0]  # the group below tiny_km2
    return {
        "lakes": int(u["count"]),
        "area_km2": round(float(u["area_km2"]), 6),
        "touching_no_pld": int(u["count_unmatched"]),
        "area_touching_no_pld_km2": round(float(u["area_km2_unmatched"]), 6),
    }


def _drop_large_in_box(gdf: gpd.GeoDataFrame, box: tuple, min_km2: float) -> gpd.GeoDataFrame:
    """The lakes but those of at least ``min_km2`` whose point inside them lies in the lon/lat ``box``."""
    large = np.asarray(gdf["area_km2"], float) >= min_km2
    if not large.any():
        return gdf
    kept_large = compare.drop_in_box(gdf[large], box)
    keep = ~large
    keep[np.flatnonzero(large)[np.isin(gdf.index[large], kept_large.index)]] = True
    return gdf[keep]


def run(ctx: Context) -> Result:
    """Figs. 7-9: size groups, unmatched lakes, regional maps, profiles and cells against PLD."""
    a, P = ctx.args, ctx.params
    name, edges = a["product_name"], P["size_groups_km2"]
    product = a["product"] or str(ctx.upstream("05_postprocess") / "lakes.parquet")
    world = ctx.upstream("00_world", required=False) or ctx.stage_dir("00_world")
    source = provenance.imagery_source(
        ctx.upstream("01_composite", required=False),
        None if a["product"] else ctx.stage_dir("05_postprocess"),  # read above as the product's stage
    )
    simulated = provenance.has_truth(source, world, ctx.profile)
    datasets = _references(ctx, world, simulated)
    glakes, pld = str(datasets["glakes"].path), str(datasets["pld"].path)
    truth, world_truth, note = provenance.default_truth(a["truth"], world, simulated, source)
    ctx.begin()
    if note:
        ctx.say(note)

    # the catalogues
    sources = {name: (product, None), "GLAKES": (glakes, "glakes"), "PLD": (pld, "pld")}
    if "hydrolakes" in datasets:
        sources["HydroLAKES"] = (str(datasets["hydrolakes"].path), "hydrolakes")
    if truth != "none":
        sources["truth"] = (truth, "truth" if Path(truth) == world_truth else None)
    mapping = {r.dataset.name: r.columns for r in datasets.values()}
    cats = {
        n: compare.read_catalogue(path, preset=preset, name=n, columns=mapping.get(preset))
        for n, (path, preset) in sources.items()
    }
    cells = compare.locate_all(cats, grid_deg=P["grid_deg"])
    ctx.show("catalogues", compare.summary(cats, {n: path for n, (path, _) in sources.items()}))

    # Fig. 7: count and area per size group; the product's lakes that touch no lake of each reference
    groups = compare.size_group_comparison(cells, edges)
    ctx.write_csv("fig7_size_groups.csv", groups, index=False)
    ctx.show(
        "size_groups",
        pd.concat({"count": compare.wide(groups, "count"), "area_km2": compare.wide(groups, "area_km2")}, axis=1),
    )
    notes = "the paper: GLAKES holds lakes >= 0.03 km2, PLD >= 0.01 km2"
    notes += "; black: the simulated truth" if "truth" in cats else ""
    ctx.save(fig7(groups, notes=notes), "fig7_size_groups.png", formats=("png", "pdf"))
    refs = {n: c for n, c in cats.items() if n not in (name, "truth")}
    unmatched = compare.unmatched_table(cats[name], refs, edges)
    ctx.write_csv("unmatched.csv", unmatched, index=False)
    ctx.show("unmatched", unmatched)
    small = _below_pld(cats[name], cats["PLD"])
    ctx.say(
        f"{name}: {small['lakes']:,} lakes < 0.01 km2 ({small['area_km2']:,.2f} km2), of which "
        f"{small['touching_no_pld']:,} touch no PLD polygon; the paper's '3.9 million lakes < 0.01 km2 not in "
        "PLD, 27,643 km2' counts them all (PLD's minimum is 0.01 km2)"
    )
    huge = {n: int((np.asarray(c["area_km2"], float) > edges[-1]).sum()) for n, c in cats.items()}
    ctx.say(f"lakes > {edges[-1]:g} km2: " + ", ".join(f"{n} {k}" for n, k in huge.items()) + " (the paper: 16 each)")

    # Fig. 8: regional maps
    panels, regions = _fig8_panels(ctx, world, cats, name, simulated)
    if panels:
        ctx.save(fig8(panels), "fig8_regions.png", formats=("png", "pdf"))
    else:
        ctx.say("no regions for Fig. 8" + ("" if simulated else " (give fig8_regions: the imagery is not the world)"))

    # Fig. 9: against PLD by longitude, latitude and 1-degree cell
    pair = _fig9_catalogues(ctx, cats, (name, "PLD"))
    pcells = compare.locate_all(pair, grid_deg=P["grid_deg"])
    lon = compare.profiles_by_group(pcells, axis="lon")
    lat = compare.profiles_by_group(pcells, axis="lat")
    lo, hi = FIG9C_RANGE
    diff = compare.cell_difference(pcells[name], pcells["PLD"], lo=lo, hi=hi)
    ctx.write_csv("fig9_profile_lon.csv", lon, index=False)
    ctx.write_csv("fig9_profile_lat.csv", lat, index=False)
    per_cell = compare.cell_table(diff, name, "PLD")
    ctx.write_csv(f"fig9c_cells_{lo:g}-{hi:g}km2.csv", per_cell, index=False)
    ctx.show("cells", per_cell)
    fig = fig9(lon, lat, diff, a=name, b="PLD", groups=compare.FIG9_GROUPS)
    ctx.save(fig, "fig9_vs_pld.png", formats=("png", "pdf"))

    return ctx.finish(
        constants=CONSTANTS,
        resolved={
            "product": product,
            "glakes": glakes,
            "pld": pld,
            "references": {n: provenance.reference_record(r) for n, r in datasets.items()},
            "truth": truth,
            **{k: list(a[k]) for k in ("exclude_box", "fig8_basemaps")},
            "fig8_regions": regions,
        },
        extra={
            provenance.IMAGERY_KEY: source,
            "size_groups": groups.round(6).to_dict("records"),
            "lakes": {n: len(c) for n, c in cats.items()},
            "below_0_01km2": small,
            "above_10000km2": huge,
        },
    )
