"""Choosing a region's NDWI threshold by eye, in JupyterLab: a slider over true colour, NDWI and the label.

The choice is saved to a threshold table (:func:`lakepaper.samples.labels.set_threshold`), which
the next run of stage 02 applies; the notebook stays a plain papermill run.

Example (in notebook 02, with ``interactive = True``):
    >>> threshold_chooser(samples_dir, "R0007", "labels/demo/thresholds.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lakepaper import io
from lakepaper.errors import ParameterError
from lakepaper.samples.chips import read_regions
from lakepaper.samples.labels import initial_label, set_threshold


def threshold_chooser(samples_dir: str | os.PathLike[str], region_id: str, table: str | os.PathLike[str]):
    """An ipywidgets box: a threshold slider, the three panels redrawn on change, and a Save button.

    Returns:
        The widget (display it); ``widget.save()`` records the slider's value as a button click does.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from lakepaper.figures.examples import true_colour

    regions = read_regions(samples_dir).set_index("region_id")
    if region_id not in regions.index:
        raise ParameterError("region_id", f"{region_id!r} is not a region of {samples_dir}")
    r = regions.loc[region_id]
    image, meta = io.read_raster(Path(samples_dir) / r.image)
    names = list(meta["band_names"])
    rgb = true_colour(image, names)
    ndwi = image[names.index("NDWI")]

    slider = w.FloatSlider(value=float(r.threshold), min=-0.5, max=0.6, step=0.01, description="NDWI >")
    button = w.Button(description="Save threshold", icon="save")
    status = w.Label()
    out = w.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
            axes[0].imshow(rgb), axes[0].set_title("true colour")
            axes[1].imshow(ndwi, cmap="RdBu", vmin=-0.8, vmax=0.8), axes[1].set_title("NDWI")
            axes[2].imshow(rgb), axes[2].imshow(np.ma.masked_equal(initial_label(ndwi, slider.value), 0), cmap="autumn")
            axes[2].set_title(f"label at NDWI > {slider.value:.2f}")
            for ax in axes:
                ax.set_xticks([]), ax.set_yticks([])
            plt.show()

    def save(*_):
        set_threshold(table, region_id, slider.value)
        status.value = f"saved {region_id}: {slider.value:.2f} -> {table}"

    slider.observe(draw, names="value")
    button.on_click(save)
    box = w.VBox([w.HBox([slider, button, status]), out])
    box.save = save
    draw()
    return box
