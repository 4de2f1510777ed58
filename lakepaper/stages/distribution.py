"""Stage 07: global lake abundance and distribution (paper section 3.2, Fig. 6) of any lake catalogue.

Reads stage 05's product (or any catalogue given as ``lakes``) and, on the simulated world, the
world's truth lakes to print every number beside: ``truth = ""`` is ``00_world/truth/lakes.parquet`` when
the run's imagery source (stage 01's, as stage 05 recorded it: :mod:`lakepaper.stages.provenance`) is the
simulated world, else no truth. The headline numbers are those of sections 3.2 and 3.3 by the paper's
definitions (:func:`lakepaper.stats.headline`: the western hemisphere as "-20 W - 160 E", the lakes over
10,000 km2, and the "3.9 million lakes below 0.01 km2 not in PLD", which are all the lakes below
0.01 km2, PLD's minimum size). Writes ``headline.csv``, ``size_groups.csv``,
``cells.csv``, ``profile_lat.csv``, ``profile_lon.csv``, ``cells_vs_truth.csv`` (with a truth) and
Fig. 6. The counting conventions are :mod:`lakepaper.stats`'.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lakepaper import compare, stats
from lakepaper.figures.distribution import fig6
from lakepaper.stages import provenance
from lakepaper.stages.context import Context, Result

#: The method constants this stage uses.
CONSTANTS = ("grid_deg", "high_latitude_deg", "western_hemisphere_lon", "size_groups_km2", "min_lake_area_km2")


def run(ctx: Context) -> Result:
    """Headline numbers, size groups, 1-degree cells and profiles, Fig. 6."""
    a, P = ctx.args, ctx.params
    lakes, name = a["lakes"], a["name"]
    post = ctx.upstream("05_postprocess", required=not lakes)
    if not lakes:
        lakes = str(post / "lakes.parquet")
    world = ctx.upstream("00_world", required=False)
    source = provenance.imagery_source(postprocess_dir=post)  # stage 01's, as stage 05 recorded it
    on_world = provenance.has_truth(source, world, ctx.profile)
    truth, world_truth, note = provenance.default_truth(
        a["truth"], world or ctx.stage_dir("00_world"), on_world, source
    )
    ctx.begin()
    if note:
        ctx.say(note)

    area_col = a["area_col"]
    cat = compare.read_catalogue(
        lakes, id_col=a["id_col"] or None, area_col=None if area_col in ("", "geometry") else area_col, name=name
    )
    if area_col == "geometry":
        cat["area_km2"] = stats.geodesic_area_km2(cat.geometry.to_numpy())
    lc = stats.locate(cat, grid_deg=P["grid_deg"], area_col="area_km2", id_col="lake_id")
    ctx.say(
        f"{name}: {len(lc):,} lakes from {lakes}; {lc.n_crossing:,} cross a {P['grid_deg']:g}-degree cell edge "
        f"and have their area split"
    )
    tlc = None
    if truth != "none":
        tcat = compare.read_catalogue(truth, preset="truth" if Path(truth) == world_truth else None, name="truth")
        tlc = stats.locate(tcat, grid_deg=P["grid_deg"], area_col="area_km2", id_col="lake_id")
        ctx.say(f"truth: {len(tlc):,} lakes from {truth}")

    # headline numbers (sections 3.2 and 3.3, the paper's definitions), beside the truth above the minimum
    # size and in all; "lakes > 10,000 km2" is Fig. 7's last group
    kw = {
        "high_latitude_deg": P["high_latitude_deg"],
        "west_lon": P["western_hemisphere_lon"],
        "huge_km2": P["size_groups_km2"][-1],
    }
    head = stats.headline(lc, **kw)
    others = []
    if tlc is not None:
        min_km2 = P["min_lake_area_km2"]
        others = [
            (f"truth >= {min_km2:g} km2", stats.headline(tlc.in_size_range(min_km2), **kw)),
            ("truth, all", stats.headline(tlc, **kw)),
        ]
    headline = stats.beside(head, *others)
    ctx.write_csv("headline.csv", headline, index_label="number")
    ctx.show("headline", headline.rename(columns={"run": name}))

    cats = {name: lc, **({"truth": tlc} if tlc is not None else {})}
    groups = compare.size_group_comparison(cats, P["size_groups_km2"])
    ctx.write_csv("size_groups.csv", groups, index=False)
    ctx.show(
        "size_groups",
        pd.concat({"count": compare.wide(groups, "count"), "area_km2": compare.wide(groups, "area_km2")}, axis=1),
    )

    cells = stats.grid_frame(lc)
    ctx.write_csv("cells.csv", cells, index=False)
    ctx.write_csv("profile_lat.csv", stats.profile(lc, "lat"), index=False)
    ctx.write_csv("profile_lon.csv", stats.profile(lc, "lon"), index=False)
    ctx.save(fig6(lc, title=name), "fig6_distribution.png", formats=("png", "pdf"))

    if tlc is not None:
        t = stats.grid_frame(tlc.in_size_range(P["min_lake_area_km2"]))
        per_cell = cells.merge(t, on=["row", "col", "lon", "lat", "cell_km2"], how="outer", suffixes=("", "_truth"))
        per_cell = per_cell.fillna(0)[
            ["lon", "lat", "count", "count_truth", "area_km2", "area_km2_truth", "density", "density_truth"]
        ]
        ctx.write_csv("cells_vs_truth.csv", per_cell, index=False)
        ctx.show("cells", per_cell)
    else:
        ctx.show("cells", cells.head(20))

    return ctx.finish(
        constants=CONSTANTS,
        resolved={"lakes": lakes, "truth": truth},
        extra={
            provenance.IMAGERY_KEY: source,
            "headline": {k: (None if pd.isna(v) else float(v)) for k, v in head.items()},
            "n_crossing": lc.n_crossing,
            "dropped": lc.dropped,
        },
    )
