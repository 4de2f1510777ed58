"""Every number of the paper, in one place, with the section it comes from.

The method is fixed here; a *profile* changes only the scale of a run (how
many tiles, how wide the network, how many epochs), never a threshold or a
rule. A profile that tries to override a method constant is refused.

Provenance: every constant carries exactly one ``origin`` label of :data:`ORIGINS`:

    ``paper``     the published text: Hu & Feng's GLAKESplus paper [P] (``shared/seeds/glakesplus_paper.txt``),
                  section given per entry; for notebooks 09-10, the dataset's own published description,
                  [Q] the QTP lake dataset (``shared/seeds/qtp_lake_dataset.txt``) or [C] the Jilin-1
                  check-dam dataset (``shared/seeds/checkdam_gully_dataset.txt``).
    ``code``      [A] the authors' released code (MIT), read for facts, not copied.
    ``tutorial``  [EE] Earth Engine's s2cloudless tutorial (cloud-shadow recipe).
    ``own``       this compendium's own choice; the source says why.

The ``source`` text gives the detail (section, what the value means, the reason of a choice).

Example:
    >>> from lakepaper import params
    >>> p = params.resolve("demo")
    >>> p["area_ratio_threshold"], p["patch_size"] < params.CONSTANTS["patch_size"].value
    (0.8, True)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lakepaper.errors import ParameterError

#: The four provenance labels a constant may carry, and what each means.
ORIGINS: dict[str, str] = {
    "paper": "the paper",
    "code": "the authors' released code",
    "tutorial": "the Earth Engine s2cloudless tutorial",
    "own": "this compendium's own choice",
}


@dataclass(frozen=True)
class Param:
    """One constant: its value, where it comes from, and whether a profile may scale it."""

    value: Any
    source: str
    scale: bool = False  # True: a profile may override it (size of the run, not the method)
    origin: str = ""  # one key of ORIGINS: the paper, the authors' code, the EE tutorial, or our own choice

    @property
    def provenance(self) -> str:
        """The origin label in words (``ORIGINS[origin]``)."""
        return ORIGINS.get(self.origin, "")


#: First and last day of Sentinel-2 L2A imagery in Earth Engine's harmonized collection (the last: today). A fact
#: about the archive, not a method constant: the world's dates and the Earth Engine exports are checked against it.
S2_ERA = (_dt.date(2017, 3, 28), _dt.date(2026, 12, 31))


def _p(value: Any, source: str, *, origin: str, scale: bool = False) -> Param:
    if origin not in ORIGINS:
        raise ParameterError("origin", f"{origin!r} is not a provenance label; choose one of {sorted(ORIGINS)}")
    return Param(value, source, scale, origin)


CONSTANTS: dict[str, Param] = {
    # --- 2.1 Sentinel-2 and preprocessing -------------------------------------------------
    "s2_collection": _p(
        "COPERNICUS/S2_SR_HARMONIZED",
        "[P] 2.1 names COPERNICUS/S2_SR (L2A); own choice: the harmonized copy, which removes the +1000 DN offset "
        "of processing baseline 04.00 (scenes from 2022-01-25), so the 2017-2022 mean mixes no two scales",
        origin="own",
    ),
    "cloud_collection": _p("COPERNICUS/S2_CLOUD_PROBABILITY", "[P] 2.1 (S2Cloudless product)", origin="paper"),
    "start_date": _p("2017-03-28", "[P] 2.1, first L2A date in Earth Engine", origin="paper"),
    "end_date": _p("2022-04-10", "[P] 2.1", origin="paper"),
    "max_scene_cloud_pct": _p(60.0, "[P] 2.1, scenes with CLOUDY_PIXEL_PERCENTAGE < 60", origin="paper"),
    "cloud_prob_threshold": _p(50.0, "[P] 2.1, pixels with cloud probability > 50 % masked", origin="paper"),
    "nir_dark_threshold": _p(0.15, "[EE] dark-NIR threshold (reflectance) for shadow candidates", origin="tutorial"),
    "cloud_proj_dist_km": _p(1.0, "[EE] maximum distance a cloud shadow is projected, km", origin="tutorial"),
    "cloud_morphology": _p(
        ("dilate",),
        "operations on the cloud | shadow mask, in order: ('dilate',) buffers by cloud_buffer_m only; the [EE] "
        "tutorial's ('erode', 'dilate') first erodes by cloud_erode_m to drop specks. Own choice, measured "
        "(benchmarks/cloud_mask_recipe.py, simulated world, 16 tiles x 24 scenes, truth flags): the erosion lets "
        "3x more truly cloudy or shadowed observations into the mean (5.5 % vs 1.8 % of those kept) and doubles the "
        "composite's cloud residue (8.4 % vs 3.7 % of pixels; over water 12.6 % vs 4.6 %), for 62 % more clear "
        "observations; only salt flats gain (residue 4.9 % vs 8.3 %)",
        origin="own",
    ),
    "cloud_erode_m": _p(
        40.0,
        "[EE] focalMin(2): a circle of radius 2 px at the tutorial's 20 m working scale (40 m), removing cloud and "
        "shadow patches narrower than about 80 m before the buffer; used when cloud_morphology includes 'erode'",
        origin="tutorial",
    ),
    "cloud_buffer_m": _p(
        100.0,
        "[EE] focalMax(BUFFER*2/20) with BUFFER = 50: a circle of radius 5 px at 20 m, 100 m, around cloud | shadow",
        origin="tutorial",
    ),
    "scl_snow_class": _p(11, "[P] 2.1, SCL class 11 (snow/ice) removed", origin="paper"),
    "composite_bands": _p(
        ("B2", "B3", "B4", "B11", "NDWI"), "[P] 2.1, band order of the 5-band composite", origin="paper"
    ),
    "composite_scale": _p(1000, "[A] composites stored as integers x1000 (undone by the reader)", origin="code"),
    "resolution_m": _p(10.0, "[P] 2.1, B11 resampled to 10 m", origin="paper"),
    "cloudless_resolution_m": _p(
        80.0,
        "s2cloudless computed from L1C (STAC sources without the probability layer) at this resolution, m: "
        "as the simulated world makes its own layer; 10 m would take ~1 h per real scene",
        origin="own",
    ),
    # --- 2.2 Sample preparation ---------------------------------------------------------
    "region_types": _p(
        ("NR", "AR", "BR", "IL", "SL"),
        "[P] 2.2, normal, alongside rivers, built-up, ice lakes, salt lakes",
        origin="paper",
    ),
    "n_sample_regions": _p(799, "[P] 2.2", scale=True, origin="paper"),
    "split_fractions": _p((0.6, 0.2, 0.2), "[P] 2.2, train/validation/test, stratified by region type", origin="paper"),
    "region_size_bins": _p(27, "[P] Fig. 2b, equal-width bins in log space", origin="paper"),
    "ndwi_threshold": _p(
        0.0, "[P] 2.2, initial label NDWI > threshold; chosen by hand per region (override table)", origin="paper"
    ),
    "sample_seed": _p(
        20240502,
        "seed of the stratified split: the authors set none; fixed so a rerun splits alike",
        scale=True,
        origin="own",
    ),
    # --- 2.3 Model application (Supplementary Table 1) -----------------------------------
    "patch_size": _p(576, "[P] 2.3, model input 576x576x5", scale=True, origin="paper"),
    "in_channels": _p(5, "[P] 2.3", origin="paper"),
    "unet_widths": _p((64, 128, 256, 512, 1024), "[A] 4-level U-Net, 1024 bottleneck", scale=True, origin="code"),
    "batch_size": _p(16, "[A] Supplementary Table 1", scale=True, origin="code"),
    "optimizer": _p("adadelta", "[A] AdaDelta", origin="code"),
    "learning_rate": _p(1.0, "[A] AdaDelta learning rate", origin="code"),
    "adadelta_rho": _p(0.95, "[A]", origin="code"),
    "adadelta_eps": _p(
        1e-7, "[A] Keras' AdaDelta default epsilon (the authors' framework; torch's is 1e-6)", origin="code"
    ),
    "l2_output": _p(1e-4, "[A] L2 on the 1x1 output layer only", origin="code"),
    "loss": _p("dice", "[P] 2.3 as Pi et al.; [A] 1 - Dice over the batch", origin="paper"),
    "flip_probability": _p(0.5, "[A] horizontal and vertical flips, the authors' only augmentation", origin="code"),
    "radiometric_offset": _p(
        0.03,
        "own: training patches get an offset drawn from [-x, x] (reflectance; mostly common to the bands), so "
        "the model does not hang on one atmospheric correction's level; wider than the +-0.02 it is checked "
        "against, so that those lie inside what it saw (issue 21; the authors flip only)",
        origin="own",
    ),
    "radiometric_gain": _p(
        0.1,
        "own: training patches get a per-band gain drawn from [1 - x, 1 + x] (calibration, other sensors)",
        origin="own",
    ),
    "coarse_view_probability": _p(
        0.5,
        "own: share of training patches shown as a Landsat-like 30 m sensor sees them (labels at 10 m), so "
        "the model does not depend on 10 m sharpness alone (issue 21); a half, not a fifth: over three seeds "
        "of the demo it cut the Landsat-like drop from 0.058-0.089 to 0.024-0.051 (stop 29)",
        origin="own",
    ),
    "patience": _p(
        50, "[P] 2.3, early stopping after 50 epochs without val-loss improvement", scale=True, origin="paper"
    ),
    "max_epochs": _p(
        200, "[A] 200 epochs at most; early stopping (patience) usually ends training first", scale=True, origin="code"
    ),
    "patches_per_epoch": _p(
        11056, "[A] about 11,056 training patches drawn per epoch (691 batches of 16)", scale=True, origin="code"
    ),
    "edge_px": _p(100, "[P] 2.3, outer 100 px of each window's prediction discarded", scale=True, origin="paper"),
    "prob_threshold": _p(0.5, "[A] sigmoid output > 0.5 is lake", origin="code"),
    "predict_precision": _p(
        "auto",
        "inference arithmetic, a speed choice: auto (bf16 where native, else fp32), fp32 or bf16 "
        "(benchmarks/predict.py: bf16 "
        "3.5-4.5x faster here, no pixel changed class)",
        scale=True,
        origin="own",
    ),
    "unet_upsample": _p(
        "bilinear",
        "decoder upsampling by interpolation, no transposed conv ([A]); bilinear is our choice (smoother than the "
        "nearest-neighbour default of the authors' Keras UpSampling2D; set nearest for theirs)",
        origin="own",
    ),
    "dice_smooth": _p(
        1.0,
        "smoothing s of Dice = (2|PY| + s) / (|P| + |Y| + s): not in [P]; the usual Keras recipe, chosen so an "
        "empty batch has Dice 1 and a finite gradient",
        origin="own",
    ),
    "pad_value": _p(
        0.0,
        "[A] regions smaller than a patch padded with 0; leaving the padded pixels out of loss and metrics is our "
        "choice (the padding is not land)",
        origin="code",
    ),
    "val_patches_per_epoch": _p(
        3584,
        "[A] about 3,584 validation patches per epoch (224 batches of 16), drawn like training ones, unflipped",
        scale=True,
        origin="code",
    ),
    "val_resample": _p(
        True,
        "[A] validation patches drawn afresh each epoch (a generator); False: one fixed set (the demo's: with "
        "64-128 patches a fresh draw moves the validation loss more than training does, and early stopping "
        "would follow the draw)",
        scale=True,
        origin="code",
    ),
    "train_seed": _p(
        20240503,
        "seed of weight initialisation and patch draws: the authors set none; fixed so a rerun trains alike",
        scale=True,
        origin="own",
    ),
    "train_precision_cpu": _p(
        "auto",
        "training arithmetic on CPU, a speed choice (the authors trained on GPU): auto (bf16 autocast where the "
        "CPU computes it natively, else fp32), fp32 or "
        "bf16; benchmarks/train.py: bf16 + channels-last 1.8x fp32 here, demo test IoU 0.911 vs 0.913",
        scale=True,
        origin="own",
    ),
    "train_precision_cuda": _p(
        "fp16", "[A] mixed precision on GPU: fp16 autocast with loss scaling (or bf16, fp32)", scale=True, origin="code"
    ),
    "train_channels_last": _p(
        True,
        "channels-last memory layout in training, a speed choice: 1.2-2.5x fp32 on CPU (benchmarks/train.py)",
        scale=True,
        origin="own",
    ),
    # --- 2.4 Post-processing -----------------------------------------------------------
    "coast_distance_m": _p(10.0, "[A] polygons within 10 m of the coastline count as ocean", origin="code"),
    "area_ratio_threshold": _p(0.8, "[P] 2.4, Area Ratio = area after / before river mask", origin="paper"),
    "min_lake_area_km2": _p(0.005, "[P] 2.4, smaller polygons deleted", origin="paper"),
    "reservoir_distance_m": _p(
        30.0,
        "not in [P], used by reservoir_rule 'extended' only: a polygon within 30 m (3 px) of a GeoDAR dam is a "
        "reservoir; the river mask spares reservoir polygons grown by 30 m; GeoDAR dams are points that may lie a "
        "pixel off the water",
        origin="own",
    ),
    "reservoir_rule": _p(
        "extended",
        "which polygons the river mask treats as reservoirs. 'paper' ([P] 2.4): those intersecting OSM or GeoDAR "
        "reservoir polygons, kept whole. 'extended' (own, the default): also GLAKES Lake_type 2 and polygons within "
        "reservoir_distance_m of a GeoDAR dam; only the reservoir's own area is spared, and a river the prediction "
        "joined to it is cut off below the area-ratio threshold (case r). Measured against the simulated truth "
        "(the post-processing tests' world, where the prediction joins rivers to reservoirs): the river pixels left "
        "after the river rule are 2,459 of 19,812 with 'paper', 490 with 'extended', no lake pixel lost by either; "
        "on the demo both give the same product",
        origin="own",
    ),
    "glakes_completion_min_km2": _p(1.0, "[P] 2.4, GLAKES natural lakes > 1 km2 merged", origin="paper"),
    "aridity_threshold": _p(0.2, "[P] 2.4, arid where aridity index < 0.2", origin="paper"),
    "aridity_scale": _p(
        10000,
        "how this compendium reads the Global Aridity Index v3 files, which store AI x 10000 (a data format, not "
        "a method choice)",
        origin="own",
    ),
    "floodplain_occurrence_pct": _p(
        30.0, "[P] 2.4, GLAKES pixels with water occurrence < 30 % removed inside the SHIFT floodplain", origin="paper"
    ),
    # --- 3 Results: analysis conventions ----------------------------------------------
    "size_groups_km2": _p(
        (0.005, 0.01, 0.03, 0.1, 1.0, 100.0, 10000.0), "[P] Fig. 7, group edges (last group > 10000)", origin="paper"
    ),
    "grid_deg": _p(1.0, "[P] Fig. 6, 1x1 degree cells", origin="paper"),
    "high_latitude_deg": _p(57.0, "[P] 3.2, share of lakes north of 57 N", origin="paper"),
    "western_hemisphere_lon": _p(
        (-20.0, 160.0),
        "[P] 3.2, the western hemisphere as '-20 W - 160 E': lakes west of 20 W or east of 160 E",
        origin="paper",
    ),
    "lake_size_groups_km2": _p(
        (0.001, 0.005, 0.01, 0.1, 1.0, 20.0),
        "[P] 3.1 and 4, Fig. 5b's groups: [0.1-1] and [1-20] km2 named (95.5 % vs 93.1 % recall), groups below "
        "0.005 km2 (< 85 %, hence the minimum area) and above it; the edges 0.001 and 0.01 are our reading of the "
        "figure's axis, which the text does not give",
        origin="paper",
    ),
    "fig8_regions": _p(
        (
            ("(a) ponds in southeast China, Jianghan Plain", 113.30, 29.70, 113.60, 30.00),
            ("(b) the Uyuni salt flat", -68.40, -20.80, -66.90, -19.70),
            ("(c) lakes by the lower Ob river", 65.00, 64.60, 66.00, 65.10),
            ("(d) seasonal lakes in eastern Argentina", -62.50, -35.80, -61.50, -35.00),
        ),
        "[P] Fig. 8 (a-d) and 3.3 name the places (ponds of the Yangtze basin, Uyuni, the lower Ob, eastern "
        "Argentina) but give no coordinates: these lon/lat boxes around them are ours; the simulated profiles "
        "show one world tile per kind instead (their composites are the only imagery)",
        scale=True,
        origin="own",
    ),
    "fig9_exclude_box": _p(
        (46.0, 36.0, 55.5, 47.5),
        "[P] Fig. 9 leaves out the Caspian Sea with the Garabogazkol lagoon; the box around it is ours",
        origin="own",
    ),
    "fig9_exclude_min_km2": _p(
        1000.0,
        "only lakes this large with their point in fig9_exclude_box are left out of Fig. 9: the Caspian Sea "
        "(~371,000 km2) and Garabogazkol (~18,000 km2), not the small lakes of the Volga delta inside the box (ours)",
        origin="own",
    ),
    # --- notebooks 09-10: the QTP lake and Jilin-1 check-dam datasets (lakepaper.datasets) ----
    "qtp_image_px": _p(256, "[Q] RGB images of 256 x 256 pixels", origin="paper"),
    "qtp_resolution_m": _p(17.0, "[Q] Google Earth level 14, 17 m", origin="paper"),
    "qtp_split_fractions": _p(
        (0.6, 0.2, 0.2),
        "[Q] publishes no split; we reuse the GLAKESplus paper's 60/20/20 ([P] 2.2), counted in groups (qtp_split_by)",
        origin="own",
    ),
    "qtp_split_by": _p(
        "overlap",
        "[Q] the images were 'randomly selected' and may show the same ground: split by groups of overlapping "
        "views (near-duplicate detection, lakepaper.datasets.duplicates), falling back to one image per group "
        "only when too few groups are found to fill the three subsets; 'image': by image (ours)",
        origin="own",
    ),
    "qtp_overlap_min": _p(
        0.15, "two QTP images overlap when at least this share of an image is in common (ours)", origin="own"
    ),
    "qtp_overlap_corr": _p(
        0.8,
        "... and their grey thumbnails correlate at least this much there (ours; unrelated images stay below ~0.5)",
        origin="own",
    ),
    "qtp_split_seed": _p(
        20240509, "seed of the QTP split: none is published; fixed so a rerun splits alike", scale=True, origin="own"
    ),
    "qtp_replica_chips": _p(
        300,
        "replica only: 256 x 256 chips rendered from the world's plateau tiles, enough to train in minutes",
        scale=True,
        origin="own",
    ),
    "checkdam_chip_px": _p(256, "[C] (1) grid cells of 256 x 256 pixels", origin="paper"),
    "checkdam_resolution_m": _p(0.75, "[C] Jilin-1 Wideband 01A PMS-02, 0.75 m", origin="paper"),
    "checkdam_epsg": _p(
        32606, "[C] WGS 1984 UTM zone 6N, as published (replica only; the reader takes the file's CRS)", origin="paper"
    ),
    "checkdam_class": _p("gully", "[C] (3) the one Labelme class, 'gully'", origin="paper"),
    "checkdam_augment_factor": _p(5, "[C] (5) 584 -> 2920 samples: the original and 4 copies", origin="paper"),
    "checkdam_augmentations": _p(
        ("hflip", "vflip", "rot", "brightness"),
        "[C] (5) names mirror flips, rotation, brightness; this cycle of copies is ours",
        origin="paper",
    ),
    "checkdam_brightness_range": _p(
        (0.8, 1.2), "brightness factor range of the brightness copies: [C] gives none; a mild +-20 %", origin="own"
    ),
    "checkdam_split_fractions": _p(
        (0.6, 0.2, 0.2), "[C] (6) 6:2:2; here by source cell, copies together", origin="paper"
    ),
    "checkdam_split_seed": _p(
        20240510,
        "seed of the augmentation draws and the split: none is published; fixed so a rerun splits alike",
        scale=True,
        origin="own",
    ),
    "checkdam_replica_px": _p(
        2048,
        "replica only: side of the drawn 0.75 m image, pixels, enough cells to split 6:2:2",
        scale=True,
        origin="own",
    ),
    "dataset_max_epochs": _p(
        1000,
        "epochs of the notebook 09-10 trainings at most: [Q] and [C] give none; an upper bound, early stopping as "
        "in 03 ends them",
        scale=True,
        origin="own",
    ),
    "dataset_patches_per_epoch": _p(
        1000,
        "training patches per epoch in notebooks 09-10: [Q] and [C] give none; a fixed epoch size so patience "
        "means the same in both",
        scale=True,
        origin="own",
    ),
    "dataset_val_patches": _p(
        333,
        "validation patches per epoch in notebooks 09-10: [Q] and [C] give none; a third of the training draw",
        scale=True,
        origin="own",
    ),
    # --- demo world (the embedded default; see the world package) ---------------------------
    "world_seed": _p(
        20240501, "demo world seed: fixed so the simulated world is the same on every machine", scale=True, origin="own"
    ),
    "world_tile_px": _p(768, "demo world: tile side in 10 m pixels, sized for a laptop CPU", scale=True, origin="own"),
    "world_scenes_per_tile": _p(
        12, "demo world: Sentinel-2 scenes per tile, enough for a clear-sky mean", scale=True, origin="own"
    ),
    "world_tiles": _p(
        None, "demo world: tile names (None: all sites, one per biome and region type)", scale=True, origin="own"
    ),
}

#: What the paper reports, for side-by-side comparison with a run (never used as a result).
PUBLISHED: dict[str, tuple[float, str]] = {
    "patch_iou": (87.5, "[P] 3.1 Table 1, overall IoU (%)"),
    "patch_recall_precision_f1_min": (92.7, "[P] 3.1, other metrics above (%)"),
    "ar_precision": (89.77, "[P] 3.1 Table 1"),
    "ar_iou": (84.28, "[P] 3.1 Table 1"),
    "sl_recall": (72.71, "[P] 3.1 Table 1"),
    "sl_iou": (69.80, "[P] 3.1 Table 1"),
    "river_mask_precision_gain": (1.77, "[P] 3.1 Table 2 (percentage points)"),
    "river_mask_recall_change": (-0.1, "[P] 3.1 Table 2 (percentage points)"),
    "lake_level_r2": (0.98, "[P] 3.1 Fig. 5a"),
    "lake_level_slope_min": (0.92, "[P] 3.1 Fig. 5a"),
    "lake_level_recall_precision_min": (86.0, "[P] 3.1 Fig. 5b, lakes > 0.005 km2 (%)"),
    "n_test_regions": (158, "[P] 3.1"),
    "n_test_patches": (2424, "[P] 3.1"),
    "n_lakes": (12e6, "[P] 3.2"),
    "total_area_km2": (3.4e6, "[P] 3.2"),
    "share_count_below_1km2": (98.3, "[P] 3.2 (%)"),
    "share_area_above_100km2": (56.1, "[P] 3.2 (%)"),
    "share_count_below_0_01km2": (32.6, "[P] 3.2 (%)"),
    "share_count_north_57": (49.0, "[P] 3.2 (%)"),
    "share_area_north_57": (30.0, "[P] 3.2 (%)"),
    "qtp_images": (6774, "[Q] RGB images, and as many ground truths"),
    "checkdam_cells": (3689, "[C] (1) grid cells"),
    "checkdam_kept": (584, "[C] (2) cells with dam land"),
    "checkdam_samples": (2920, "[C] (5) samples after augmentation"),
    "checkdam_miou_min": (80.0, "[C] mIoU exceeding 80 % (%)"),
    "checkdam_oa_min": (89.0, "[C] OA surpassing 89 % (%)"),
    "lake_level_recall_0_1_1km2": (95.5, "[P] 3.1 Fig. 5b, mean recall of labelled lakes of 0.1-1 km2 (%)"),
    "lake_level_recall_1_20km2": (93.1, "[P] 3.1 Fig. 5b, mean recall of labelled lakes of 1-20 km2 (%)"),
    "share_count_west": (54.0, "[P] 3.2, share of lakes in the western hemisphere (west of 20 W, east of 160 E) (%)"),
    "share_area_west": (48.0, "[P] 3.2, share of lake area in the western hemisphere (%)"),
    "n_lakes_above_10000km2": (16, "[P] 3.3 Fig. 7, lakes > 10,000 km2 (in each of the three datasets)"),
    "n_lakes_below_0_01km2": (3.9e6, "[P] 3.3, lakes < 0.01 km2, below PLD's minimum (32.6 % of 12 million)"),
    "area_below_0_01km2": (27643.0, "[P] 3.3, total area of the lakes < 0.01 km2 (km2)"),
}

#: Profiles override scale only. ``demo`` runs on the simulated world on 2 CPU cores in minutes.
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "demo": {
        # 240: with 120, the 22 test and 26 validation regions made the kept model's Table 1 swing
        # 0.74-0.87 over seeds; with 240 (47 test regions) three seeds scored 0.80-0.87 (stop 28)
        "n_sample_regions": 240,
        "patch_size": 128,
        # 12..192 (1.1 M parameters): the narrowest U-Net that met issue 21's robustness checks on the
        # world with realistic water; 8..128 lost 22-42 points of test IoU under a +0.02 offset
        "unet_widths": (12, 24, 48, 96, 192),
        "batch_size": 8,
        # 40, not 20: with 240 regions the validation IoU swings by up to 0.16 between epochs, and the runs
        # that patience 20 stopped early kept the worst models (0.803, 0.823); most runs' best epoch is 70-78
        "patience": 40,
        "max_epochs": 80,
        "patches_per_epoch": 256,
        "val_patches_per_epoch": 128,
        "val_resample": False,
        "edge_px": 24,
        "dataset_max_epochs": 40,
        "dataset_patches_per_epoch": 128,
        "dataset_val_patches": 48,
        "fig8_regions": (),  # the simulated world: one tile per kind (lakepaper.figures.comparison)
    },
    # The smallest world that still exercises every code path; used by the tests.
    "tiny": {
        "n_sample_regions": 30,
        "patch_size": 64,
        "unet_widths": (4, 8, 16, 32, 64),
        "batch_size": 4,
        "patience": 2,
        "max_epochs": 3,
        "patches_per_epoch": 8,
        "val_patches_per_epoch": 4,
        "edge_px": 8,
        "world_tile_px": 256,
        "world_scenes_per_tile": 4,
        "qtp_replica_chips": 24,
        "checkdam_replica_px": 768,
        "dataset_max_epochs": 2,
        "dataset_patches_per_epoch": 8,
        "dataset_val_patches": 8,
        "fig8_regions": (),  # the simulated world: one tile per kind (lakepaper.figures.comparison)
    },
}

DEFAULT_PROFILE = "demo"


def _check_profiles() -> None:
    for profile, overrides in PROFILES.items():
        for name in overrides:
            if name not in CONSTANTS:
                raise ParameterError(name, f"profile {profile!r} sets an unknown parameter")
            if not CONSTANTS[name].scale:
                raise ParameterError(name, f"profile {profile!r} may not change a method constant")


_check_profiles()


def resolve(profile: str = DEFAULT_PROFILE, **overrides: Any) -> dict[str, Any]:
    """The parameter values of a profile, with optional further overrides checked.

    Args:
        profile: ``demo`` (default), ``paper`` or ``tiny``.
        **overrides: values that replace the profile's, validated like papermill parameters;
            None leaves the profile's value (so a notebook can pass its ``None`` defaults through).

    Returns:
        A plain dict of name -> value.

    Raises:
        ParameterError: unknown profile, unknown name, or a value of the wrong type.
    """
    if profile not in PROFILES:
        raise ParameterError("profile", f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    values = {name: p.value for name, p in CONSTANTS.items()}
    values.update(PROFILES[profile])
    values.update(validate({k: v for k, v in overrides.items() if v is not None}))
    return values


def _same_kind(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):  # an int parameter (a size, a count) takes no fractions
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, tuple):  # elements are checked against the kind of the first default
        return isinstance(value, list | tuple) and (not default or all(_same_kind(default[0], v) for v in value))
    return isinstance(value, type(default))


def validate(given: Mapping[str, Any], *, allowed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check parameters by name and type; return them with tuples normalised.

    Args:
        given: name -> value, e.g. what papermill injected into a notebook.
        allowed: name -> default of the names accepted (defaults: every paper constant).

    Raises:
        ParameterError: naming the first unknown name or badly typed value.
    """
    allowed = {n: p.value for n, p in CONSTANTS.items()} if allowed is None else dict(allowed)
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name not in allowed:
            raise ParameterError(name, f"unknown parameter; known: {', '.join(sorted(allowed))}")
        default = allowed[name]
        if not _same_kind(default, value):
            raise ParameterError(
                name, f"expected {type(default).__name__} like {default!r}, got {type(value).__name__} {value!r}"
            )
        items = value if isinstance(default, tuple) else (value,)
        numeric = [v for v in items if isinstance(v, int | float) and not isinstance(v, bool)]
        if isinstance(default, int | float | tuple) and not isinstance(default, bool) and any(v < 0 for v in numeric):
            raise ParameterError(name, f"must not be negative, got {value!r}")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def date_range() -> tuple[_dt.date, _dt.date]:
    """The paper's observation period as dates."""
    return (_dt.date.fromisoformat(CONSTANTS["start_date"].value), _dt.date.fromisoformat(CONSTANTS["end_date"].value))
