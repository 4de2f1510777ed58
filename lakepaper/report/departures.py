"""Where this compendium departs from the paper: one list of records, shown as one table on the page.

Each :class:`Departure` says what the paper (or, where the paper is silent, the authors' released code)
does, what this compendium does, why, and whether the difference is *aligned* with the authors' code
(the paper is silent or loose and the code settles it) or *this compendium's choice* (the reason
given). Where an effect can be measured on the simulated world, :attr:`Departure.measure` reads it from
the run's outputs (:class:`~lakepaper.report.outputs.Run`); :attr:`Departure.effect` holds what was
measured once elsewhere (a benchmark, the source of a constant) or why nothing is measured.

This is the only place the departures are listed: the page renders :func:`departures_frame` through
the registry (:data:`lakepaper.report.registry.PAGE_TABLES`) in the section the registry names
(:data:`lakepaper.report.sections.SECTIONS`). The method constants named in :attr:`Departure.params`
carry the same label in :mod:`lakepaper.params` (``origin``).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lakepaper.report.outputs import Missing, Run

#: What a departure is: aligned with the authors' code, or this compendium's own choice.
STATUS = {
    "aligned": "as the authors' code",
    "choice": "this compendium's choice",
}

#: Processing baseline 04.00: from this date on, Sentinel-2 L2A DNs carry a +1000 offset (BOA_ADD_OFFSET).
OFFSET_FROM = "2022-01-25"


@dataclass(frozen=True)
class Departure:
    key: str
    topic: str
    paper: str  # what the paper (or the authors' code, said so) does
    compendium: str  # what this compendium does
    why: str
    status: str  # a key of STATUS
    params: tuple[str, ...] = ()  # the method constants that set it (lakepaper.params)
    effect: str = ""  # measured once elsewhere, or why it is not measured
    measure: Callable[[Run], str] | None = None  # the effect measured in this run (raises Missing if it cannot)


# --- effects measured in a run -------------------------------------------------------------------------


def _offset_share(run: Run) -> str:
    """The share of the simulated scenes that carry the processing-baseline offset, and what it would do."""
    path = run.stage_dir("00_world") / "scenes.csv"
    if not run.done("00_world") or not path.is_file():
        raise Missing("00_world has not run")
    dates = pd.to_datetime(pd.read_csv(path, usecols=["date"])["date"])
    late = float((dates >= pd.Timestamp(OFFSET_FROM)).mean()) if len(dates) else float("nan")
    return (
        f"{100 * late:.1f} % of this world's {len(dates)} scenes are dated {OFFSET_FROM} or later; read as raw "
        f"S2_SR DNs, each band of those scenes is 0.1 reflectance too bright, which would raise a 5-year mean by "
        f"up to {0.1 * late:.4f} (clear observations of late scenes weigh in proportionally) and bias their NDWI"
    )


def _training_regions(run: Run) -> pd.DataFrame:
    """Stage 02's training regions (their table, without geometry)."""
    import geopandas as gpd

    path = run.stage_dir("02_samples") / "regions.gpkg"
    if not run.done("02_samples") or not path.is_file():
        raise Missing("02_samples has not run")
    r = gpd.read_file(path, ignore_geometry=True)
    return r[r["split"] == "train"]


def _padded_share(run: Run) -> str:
    """The expected share of padded pixels in a training patch (regions drawn by area, as the sampler does)."""
    size = int(run.extra("03_train", "parameters", "patch_size"))
    r = _training_regions(run)
    if not len(r):
        raise Missing("no training region")
    h, w = r["height"].to_numpy(float), r["width"].to_numpy(float)
    weight = r["area_km2"].to_numpy(float) / r["area_km2"].sum()
    covered = np.minimum(h, size) * np.minimum(w, size) / size**2
    padded = float((weight * (1 - covered)).sum())
    small = float(weight[(h < size) | (w < size)].sum())
    return (
        f"{100 * padded:.1f} % of the pixels of a training patch are padding on average ({100 * small:.0f} % of "
        f"the draws come from a region narrower than the {size}-px patch); left out of the loss here, counted as land "
        "(the authors' way) they would train the model on pixels of constant zero input labelled land; the effect of "
        "that on the scores is not measured"
    )


def _dice_bound(run: Run) -> str:
    """How much the smoothing term can move the Dice loss of an average training batch of this run."""
    r = _training_regions(run)
    p = run.extra("03_train", "parameters")
    size, batch, s = int(p["patch_size"]), int(p["batch_size"]), float(p["dice_smooth"])
    share = float(np.average(r["lake_share"].to_numpy(float), weights=r["area_km2"].to_numpy(float)))
    lake_px = share * batch * size**2
    bound = s / (2 * lake_px) if lake_px > 0 else float("nan")
    return (
        f"a training batch of this run holds ~{lake_px:,.0f} lake pixels ({100 * share:.0f} % of {batch} x "
        f"{size}^2): smoothing {s:g} moves its Dice by at most ~{bound:.1e}; only a batch without lake pixels "
        "differs: its Dice is s / (sum of p + s), which with s = 1 rewards driving every probability down and with "
        "1e-7 is ~0 whatever the prediction"
    )


def _robustness(run: Run) -> str:
    """The model's test IoU under perturbed inputs, as stage 03 measured it (``robustness.csv``)."""
    path = run.stage_dir("03_train") / "robustness.csv"
    if not run.done("03_train") or not path.is_file():
        raise Missing("03_train has not measured robustness")
    r = pd.read_csv(path, keep_default_na=False)
    parts = []
    for row in r.to_dict("records"):
        part = f"{row['condition']}: {-100 * float(row['drop']):+.1f} pp"
        if float(row.get("pixel_drop") or 0) != 0:  # a coarser view: the part its pixels alone take
            part += f" ({-100 * float(row['pixel_drop']):+.1f} pp of it the coarser pixels alone"
            if row.get("drop_min_area", "") != "":  # and what it costs the lakes the product keeps
                part += f"; {-100 * float(row['drop_min_area']):+.1f} pp on lakes of the product's minimum area and up"
            part += ")"
        if row["result"] == "fail" and float(row.get("most_lost_share") or 0) >= 0.5:  # one lake decides it
            part += f" ({100 * float(row['most_lost_share']):.0f} % of the lost lake pixels in {row['most_lost']})"
        parts.append(part)
    return "test IoU change with perturbed inputs, " + "; ".join(parts)


def _precision(run: Run) -> str:
    t = run.extra("03_train", "training")
    return f"this run trained in {t.get('precision', '?')} on {t.get('device', '?')}"


DEPARTURES: tuple[Departure, ...] = (
    Departure(
        "s2_collection",
        "Sentinel-2 collection",
        "COPERNICUS/S2_SR (Level-2A), 2017-03-28 to 2022-04-10",
        "COPERNICUS/S2_SR_HARMONIZED",
        f"From {OFFSET_FROM} (processing baseline 04.00) Level-2A DNs carry a +1000 offset. S2_SR keeps it, so "
        "scenes after that date read 0.1 reflectance brighter in every band; the harmonised copy subtracts it, so "
        "the 2017-2022 mean averages one scale. The simulated world stores the offset like the archive and the "
        "reader removes it.",
        "choice",
        ("s2_collection",),
        measure=_offset_share,
    ),
    Departure(
        "cloud_morphology",
        "Cloud and shadow mask",
        "the Earth Engine s2cloudless tutorial the paper cites: the cloud | shadow mask eroded (focalMin, 40 m at "
        "20 m) and then buffered by 100 m",
        "buffered by 100 m without the erosion (cloud_morphology = ('dilate',); ('erode', 'dilate') runs the tutorial)",
        "Measured on the simulated world against its per-scene truth: the erosion drops small clouds and cloud "
        "edges the buffer then cannot recover.",
        "choice",
        ("cloud_morphology",),
        effect="benchmarks/cloud_mask_recipe.py (16 tiles x 24 scenes): with the erosion 5.5 % of the observations "
        "kept are truly cloud or shadow (1.8 % without) and the composite's cloud residue is 8.4 % of pixels "
        "(3.7 %; over water 12.6 % vs 4.6 %), for 62 % more clear observations; only salt flats gain",
    ),
    Departure(
        "cloudless_from_l1c",
        "Cloud probability outside Earth Engine",
        "COPERNICUS/S2_CLOUD_PROBABILITY (s2cloudless, computed by Sentinel Hub for Earth Engine)",
        "a STAC source without that layer: s2cloudless computed here from each scene's L1C item at 80 m "
        "(cloudless_resolution_m), interpolated bilinearly to 10 m; without L1C, SCL classes 8-10",
        "The public STAC collections carry no probability layer; 10 m would take about an hour per scene on a CPU.",
        "choice",
        ("cloudless_resolution_m",),
        effect="tests/test_sources.py and benchmarks/cloud_sources.py (tiny world): computed from L1C, the clear "
        "counts equal those made with the world's own layer on 99.97 % of pixels; SCL only leaves 36.0 % of "
        "pixels without a clear observation (23.4 % with s2cloudless)",
    ),
    Departure(
        "reservoir_rule",
        "Reservoirs in the river mask",
        "polygons intersecting OSM or GeoDAR reservoir polygons are kept (whole)",
        "also GLAKES reservoirs (Lake_type 2) and polygons within 30 m of a GeoDAR dam; the reservoir's own area "
        "is spared and a river the prediction joined to it is cut off below the area-ratio threshold (case r); "
        "reservoir_rule = 'paper' runs the paper's rule",
        "A prediction that joins a river to a reservoir keeps the whole river under the paper's rule.",
        "choice",
        ("reservoir_rule",),
        effect="on the post-processing tests' world (rivers joined to reservoirs), river pixels left after the river "
        "rule: 2,459 of 19,812 (paper) vs 490 (this rule), no lake pixel lost by either; on the demo the two "
        "give the same product",
    ),
    Departure(
        "unet_upsample",
        "U-Net decoder upsampling",
        "not stated; the authors' Keras code: UpSampling2D with its default, nearest neighbour",
        "bilinear interpolation (unet_upsample; nearest available)",
        "Smoother decoder features at the same cost and no parameters; both are interpolation, no transposed "
        "convolution, as the authors'. Set unet_upsample to nearest to follow their code.",
        "choice",
        ("unet_upsample",),
        effect="on the demo (stop 26's build, one training each, bf16): nearest 0.807 test IoU (best epoch 7, stopped "
        "at 27) against bilinear 0.854 (best 24 of 44), and nearest lost 0.379 with every band -0.02 where bilinear "
        "lost 0.004; one seed each, and bilinear itself ranged 0.822-0.857 over three builds of the same code",
    ),
    Departure(
        "dice_smooth",
        "Dice loss smoothing",
        "Dice loss as Pi et al. (the smoothing is not stated); the authors' Keras code: Keras' epsilon (1e-7)",
        "Dice = (2|PY| + s) / (|P| + |Y| + s) with s = 1, over every valid pixel of the batch",
        "The usual Keras recipe: an all-land batch with no prediction has Dice 1 and a finite gradient. With "
        "thousands of lake pixels per batch the two smoothings give the same loss to within 1e-4.",
        "choice",
        ("dice_smooth",),
        measure=_dice_bound,
    ),
    Departure(
        "padding",
        "Padding of small regions",
        "the authors' code pads regions smaller than a patch with 0 and counts the padding as non-lake in the loss",
        "padded with 0 (pad_value), but the padded pixels are left out of the loss and of every score",
        "The padding is not land: counting it teaches the model that region borders are dry and inflates the "
        "true negatives of the scores.",
        "choice",
        measure=_padded_share,
    ),
    Departure(
        "grwl",
        "River mask from GRWL",
        "GRWL and OSM river layers remove river pixels (2.4); GRWL also publishes a 30 m river-water mask",
        "GRWL centrelines buffered by half their width at each vertex, plus OSM river areas",
        "The centreline vectors carry the width measured along the river, so a buffer by half of it rebuilds the "
        "river at that width without the 30 m raster mosaic; round caps leave no gaps between segments.",
        "choice",
        effect="not measured: the simulated GRWL-like lines follow the world's rivers of 90 m and wider in ~500 m "
        "segments with jittered widths; the world has no GRWL-like mask to compare with",
    ),
    Departure(
        "fig8_regions",
        "Fig. 8 regions",
        "four places, named but without coordinates: ponds of the Yangtze basin, the Uyuni salt flat, the lower "
        "Ob, eastern Argentina",
        "the paper profile: lon/lat boxes around those places (fig8_regions); the simulated profiles: one world "
        "tile of each kind",
        "The paper gives no coordinates; the simulated world has none of the real places.",
        "choice",
        ("fig8_regions",),
        effect="none on any number (a figure)",
    ),
    Departure(
        "fig9_caspian",
        "Fig. 9 without the Caspian Sea",
        "the Caspian Sea, with the Garabogazkol lagoon, left out",
        "lakes of at least 1,000 km2 whose point lies in a box around the Caspian left out (on by default)",
        "Only the Caspian Sea and Garabogazkol are that large in the box: the small lakes of the Volga delta, "
        "which a plain box would drop, stay.",
        "choice",
        ("fig9_exclude_box", "fig9_exclude_min_km2"),
        effect="none on the simulated world (no lake in the box)",
    ),
    Departure(
        "fig5b_groups",
        "Fig. 5b size groups",
        "groups [0.1-1] and [1-20] km2 named, groups below 0.005 km2 scored before the minimum-area filter",
        "< 0.001, 0.001-0.005, 0.005-0.01, 0.01-0.1, 0.1-1, 1-20, >= 20 km2 (lake_size_groups_km2)",
        "The named groups are the paper's; the edges 0.001 and 0.01 are our reading of the figure's axis.",
        "choice",
        ("lake_size_groups_km2",),
        effect="none on the named groups' scores",
    ),
    Departure(
        "arithmetic",
        "Training arithmetic",
        "trained on a 48 GB GPU; the authors' code: fp16 mixed precision",
        "on GPU as the authors (fp16 autocast); on CPU bf16 autocast where the CPU computes it natively, else fp32",
        "A speed choice on CPU (bf16 1.8x fp32 with channels-last); a CPU without native bf16 trains in fp32, so "
        "the same profile gives slightly different weights on different machines.",
        "choice",
        ("train_precision_cpu", "train_precision_cuda"),
        effect="demo test IoU 0.911 (bf16) vs 0.913 (fp32) on one machine (benchmarks/train.py); 92.7 % (bf16, a CPU "
        "with AMX) vs 93.39 % (fp32, an AVX2-only CPU, 641 s instead of 178 s for stage 03) across two machines "
        "(issue 20); tiny world, 25 epochs of 32 patches, 4 seeds on one CPU (AMD EPYC with avx512_bf16): test IoU "
        "fp32 0.708-0.824 (mean 0.746), bf16 0.736-0.808 (mean 0.778), bf16 minus fp32 per seed -1.6 to +7.2 points, "
        "as large as the spread between seeds: differences of that size are arithmetic and chance, not method",
        measure=_precision,
    ),
    Departure(
        "radiometric_augmentation",
        "Augmentation",
        "horizontal and vertical flips (the authors' code)",
        "flips; a random offset (+-0.03) and gain (+-10 %) of each training patch, mostly common to its bands; "
        "half of the patches shown as a 30 m (Landsat-like) sensor sees them",
        "A model trained on one atmospheric correction should map lakes on another, and on other sensors: "
        "composites carry residual offsets of a few hundredths in the visible. Without the jitter the demo "
        "model's test IoU fell by 36 points under a +0.02 offset (issue 21).",
        "choice",
        ("radiometric_offset", "radiometric_gain", "coarse_view_probability"),
        measure=_robustness,
    ),
    Departure(
        "seeds",
        "Random seeds",
        "not stated (the authors set none)",
        "fixed seeds for the split, the weight initialisation and the patch draws",
        "A rerun on the same machine and arithmetic gives the same split and weights.",
        "choice",
        ("sample_seed", "train_seed"),
        effect="none on the method",
    ),
)


COLUMNS = ("departure", "the paper", "this compendium", "status", "why", "effect on the simulated world")


def effect_of(d: Departure, run: Run | None) -> str:
    """The effect this run measured (when it can), else the one measured elsewhere, else 'not measured'."""
    if d.measure is not None and run is not None:
        try:
            measured = d.measure(run)
            return f"{measured}; {d.effect}" if d.effect else measured
        except (Missing, KeyError, ValueError, TypeError, OSError):
            pass
    return d.effect or "not measured"


def departures_frame(run: Run | None = None, departures: Sequence[Departure] = DEPARTURES) -> pd.DataFrame:
    """The departures as one table, the effects this run measured filled in (``run`` None: the static ones)."""
    rows = [(d.topic, d.paper, d.compendium, STATUS[d.status], d.why, effect_of(d, run)) for d in departures]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def departures_html(run: Run | None = None, *, label: str = "Table D1", caption: str = "") -> str:
    """The departures table as an HTML block (the page's table style: class ``data``)."""
    frame = departures_frame(run)
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False)
    )
    anchor = label.lower().replace(" ", "-").replace(".", "")
    return (
        f"<div class='table' id='{esc(anchor)}'><p class='caption'><b>{esc(label)}.</b> {esc(caption)} "
        "<span class='src'>lakepaper/report/departures.py</span></p>"
        f"<table class='data departures'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )
