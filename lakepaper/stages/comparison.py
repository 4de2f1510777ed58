"""Stage 08: this product against GLAKES and PLD (paper section 3.3, Figs. 7-9).

Reads stage 05's product (or any catalogue given as ``product``) and the two references, both from the
one registry :mod:`lakepaper.references` (published columns GLAKES ``Lake_id``/``Area_bound``, PLD
``lake_id``/``ref_area``, HydroLAKES ``Hylak_id``/``Lake_area``; a column mapping by
``$LAKEPAPER_REF_<NAME>_COLUMNS``). "The simulated world" is the imagery source stage 01 recorded
(:mod:`lakepaper.stages.provenance`; a build that recorded none: a world exists and the profile is not
``paper``). ``""`` for ``glakes`` or ``pld`` means the simulated world's ``references/`` on the simulated
world, else the real files laid out under ``references/`` (``make prereqs PROFILE=paper``). On the
simulated world its truth lakes are compared too (``truth = ""``; elsewhere no truth), and Fig. 8 shows
one tile per kind of landscape over stage 01's composite (:func:`lakepaper.figures.comparison.world_panels`)
unless ``fig8_regions`` are given; off the world, Fig. 8 needs ``fig8_regions``.

Writes ``fig7_size_groups.csv``, ``unmatched.csv``, ``fig9_profile_lon.csv``, ``fig9_profile_lat.csv``,
``fig9c_cells_0.01-0.1km2.csv`` and Figs. 7, 8 and 9. The comparisons are :mod:`lakepaper.compare`'s.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lakepaper import compare
from lakepaper import references as registry
from lakepaper.figures.comparison import fig7, fig8, fig9, region_panels, world_panels
from lakepaper.stages import provenance
from lakepaper.stages.context import Context, Result

#: The method constants this stage uses.
CONSTANTS = ("grid_deg", "size_groups_km2")

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


def _fig8_panels(ctx: Context, world: Path, cats: dict, name: str, simulated: bool) -> list:
    """Fig. 8's panels: the given regions, else (on the simulated world) one tile per kind over stage 01's
    composite, else none."""
    a = ctx.args
    if a["fig8_regions"]:
        return region_panels(a["fig8_regions"], a["fig8_basemaps"], cats, right=(name,))
    if not simulated:
        return []
    from lakepaper.world.files import WorldFiles

    composite = ctx.upstream("01_composite", required=False) or ctx.stage_dir("01_composite")
    return world_panels(WorldFiles(world).tiles(), composite / "tiles", cats, right=(name,))


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

    # Fig. 8: regional maps
    panels = _fig8_panels(ctx, world, cats, name, simulated)
    if panels:
        ctx.save(fig8(panels), "fig8_regions.png", formats=("png", "pdf"))
    else:
        ctx.say("no regions for Fig. 8" + ("" if simulated else " (give fig8_regions: the imagery is not the world)"))

    # Fig. 9: against PLD by longitude, latitude and 1-degree cell
    box = tuple(a["exclude_box"]) if a["exclude_box"] else None
    pair = {n: compare.drop_in_box(cats[n], box) for n in (name, "PLD")}
    if box:
        left_out = ", ".join(f"{n} {len(cats[n]) - len(pair[n])}" for n in pair)
        ctx.say(f"left out of Fig. 9 (point inside the box {box}): {left_out}")
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
            **{k: list(a[k]) for k in ("exclude_box", "fig8_regions", "fig8_basemaps")},
        },
        extra={
            provenance.IMAGERY_KEY: source,
            "size_groups": groups.round(6).to_dict("records"),
            "lakes": {n: len(c) for n, c in cats.items()},
        },
    )
