"""The paper page's text: its sections (summaries of the seed paper, in our own words), their titles, and
the line each stage gets in the Fig. 1 flowchart (from :data:`lakepaper.stages.REGISTRY`).

Edit the prose here, not in the HTML code (:mod:`lakepaper.report.html`). Each :class:`Section` lists the
figures and tables placed in it (labels of :mod:`lakepaper.report.registry`) and the stages it reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakepaper.stages import REGISTRY, Stage

# --- stages ------------------------------------------------------------------------------------


#: Section key -> heading (also the flowchart's legend and colours, in this order).
SECTION_TITLES: dict[str, str] = {
    "data": "Input data",
    "2.1": "2.1 Sentinel-2 and preprocessing",
    "2.2": "2.2 Sample preparation",
    "2.3": "2.3 Model application",
    "2.4": "2.4 Post-processing",
    "3.1": "3.1 Accuracy assessment",
    "3.2": "3.2 Global lake abundance and distribution",
    "3.3": "3.3 Comparison with other global lake datasets",
    "extra": "Related datasets (QTP lakes, check dams)",
}


def stage_info(stage: str) -> Stage:
    """The registry entry (:data:`lakepaper.stages.REGISTRY`), or a plain one for a stage it does not know yet."""
    title = stage.split("_", 1)[-1].replace("_", " ").capitalize()
    return REGISTRY.get(stage, Stage(stage, "", title, "", "extra"))


# --- sections ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    paragraphs: tuple[str, ...]  # plain text; **bold** is allowed
    items: tuple[str, ...] = ()  # labels of FIGURES / TABLES, or "Fig. 1"
    stages: tuple[str, ...] = ()  # stages whose results this section reports


SECTIONS: tuple[Section, ...] = (
    Section(
        "method",
        "2 Materials and methods",
        (
            "GLAKESplus maps every lake larger than 0.005 km² at 10 m resolution in four steps: (1) a multi-year "
            "per-pixel mean of cloud-free Sentinel-2 observations is computed and exported in tiles; (2) sample "
            "regions around the world are labelled and split into training, validation and test sets; (3) a U-Net "
            "is trained on them and predicts a raw global lake map; (4) post-processing removes ocean and river "
            "residue and completes the map with existing lake datasets, giving the GLAKESplus polygons.",
            "Fig. 1 below is not drawn by hand: it is generated from this compendium's own stage graph, one box per "
            "notebook stage and one arrow per input a stage's manifest records.",
        ),
        ("Fig. 1",),
    ),
    Section(
        "2.1",
        SECTION_TITLES["2.1"],
        (
            "All Sentinel-2 Level-2A scenes from 28 March 2017 to 10 April 2022 with less than 60 % cloudy pixels "
            "are used. Pixels with an s2cloudless cloud probability above 50 % are masked; cloud shadows are "
            "dark near-infrared pixels that fall inside the projected cloud mask; snow and ice are removed with "
            "the scene classification layer (class 11).",
            "Each remaining observation contributes B2, B3, B4, B11 (resampled to 10 m) and NDWI = (B3 - B8) / "
            "(B3 + B8) to a per-pixel mean. Averaging gives each lake its mean extent, damps seasonal change and "
            "washes out cloud residue, algal blooms and sediment. The five-band composite is the model's input.",
        ),
        stages=("01_composite",),
    ),
    Section(
        "2.2",
        SECTION_TITLES["2.2"],
        (
            "Representative sample regions are chosen worldwide. Each gets a first label from an NDWI threshold "
            "picked by hand, then a long manual edit removes false and missed water. Regions are typed by their "
            "dominant difficulty: normal (NR), lakes alongside rivers (AR), built-up areas (BR), ice lakes (IL) "
            "and salt lakes (SL).",
            "The paper labels 799 regions and splits them 60/20/20 into training, validation and test sets, "
            "stratified by region type (Fig. 2).",
        ),
        ("Fig. 2",),
        ("02_samples",),
    ),
    Section(
        "2.3",
        SECTION_TITLES["2.3"],
        (
            "A U-Net (encoder, decoder, skip connections) follows Pi et al.'s GLAKES model with small changes. It is "
            "trained with a Dice loss and the AdaDelta optimiser on 576 × 576 × 5 patches drawn at random from the "
            "training regions, each region chosen with probability proportional to its size. The model with the "
            "lowest validation loss is kept; training stops after 50 epochs without improvement (Supplementary "
            "Table 1).",
            "Prediction slides a window over each composite tile; the outer 100 pixels of each window's output, "
            "which lack context, are discarded and the windows are stitched into a seamless map.",
        ),
        ("Supplementary Table 1",),
        ("03_train", "04_predict"),
    ),
    Section(
        "2.4",
        SECTION_TITLES["2.4"],
        (
            "Ocean residue is removed with OpenStreetMap coastline data: water outside the land polygons goes, "
            "then every polygon touching the ocean polygons (lagoons included).",
            "River residue is removed with GRWL centre lines and OSM river areas, sparing polygons that touch OSM "
            "or GeoDAR reservoirs. Each polygon's area ratio (area after / before the river mask) then decides: a "
            "polygon that intersects GLAKES with ratio ≥ 0.8 is kept whole, one that does not intersect GLAKES "
            "and has ratio < 0.8 is deleted whole, and otherwise the masked result stays (Fig. 3). Polygons under "
            "0.005 km² are deleted.",
            "Missed lakes are completed: GLAKES natural lakes over 1 km² and its reservoirs, after masking GLAKES "
            "pixels with water occurrence below 30 % inside the SHIFT floodplain (Fig. 4), and PLD lakes in arid "
            "land (aridity index < 0.2) are merged into the map.",
        ),
        ("Fig. 3", "Fig. 4"),
        ("05_postprocess",),
    ),
    Section(
        "3.1",
        SECTION_TITLES["3.1"],
        (
            "The independent test regions are scored with recall, precision, F1 and IoU of the lake class (mIoU "
            "and overall accuracy are left out: the many correct non-lake pixels would inflate them). Table 1 "
            "scores 576 × 576 patches taken sequentially from the test regions, each predicted on its own, with "
            "the pixels pooled per region type; the paper reports an overall IoU of 87.5 with the other scores "
            "above 92.7, and weaker AR precision (big rivers taken for lakes) and SL recall (salt lakes missed), "
            "as its Supplementary Fig. 1 shows. Beside the paper's isolated patches, Table 1 shows the stitched, "
            "seamless prediction cut into the same patches. Table 2 shows what the river mask changes; Fig. 5 "
            "scores whole lakes.",
        ),
        ("Table 1", "Supplementary Fig. 1", "Table 2", "Fig. 5"),
        ("06_accuracy",),
    ),
    Section(
        "3.2",
        SECTION_TITLES["3.2"],
        (
            "The paper counts ~12 million lakes over 0.005 km², ~3.4 × 10⁶ km² in total. Lakes over 100 km² hold "
            "56.1 % of the area while lakes under 1 km² are 98.3 % of the count; 49 % of the lakes (30 % of the "
            "area) lie north of 57° N (Fig. 6).",
        ),
        ("Fig. 6",),
        ("07_distribution",),
    ),
    Section(
        "3.3",
        SECTION_TITLES["3.3"],
        (
            "The product is compared with GLAKES (30 m, lakes ≥ 0.03 km²) and PLD (≥ 0.01 km²) by size group "
            "(Fig. 7), in example regions (Fig. 8) and along longitude, latitude and per 1° cell (Fig. 9).",
        ),
        ("Fig. 7", "Fig. 8", "Fig. 9"),
        ("08_comparison",),
    ),
    Section(
        "departures",
        "Departures from the paper",
        (
            "A reviewer reading the paper beside this compendium should find every difference in one place. Table "
            "D1 lists them: the smaller departures in the model and its inputs (the Sentinel-2 collection, the "
            "U-Net's upsampling, the Dice smoothing, the padding, the river layer) and the ones a figure needs "
            "because the paper gives no coordinates or edges. Each is either what the authors' released code does "
            "or labelled as this compendium's choice, with the reason.",
        ),
        ("Table D1",),
    ),
    Section(
        "extra",
        SECTION_TITLES["extra"],
        (
            "Two further datasets reuse the segmentation code: the QTP lake dataset (RGB images and ground truths) "
            "and the Jilin-1 check-dam gully dataset. Their figures are in the appendix.",
        ),
        stages=("09_qtp", "10_checkdam"),
    ),
)
