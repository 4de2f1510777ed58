"""Supplementary Fig. 1: the model on isolated test patches, per region type (image, label, prediction).

The patches are chosen by :func:`lakepaper.train.examples.choose_examples` (the median-IoU and the
lowest-IoU patch of each type) and drawn as the model saw them (the padding of a region smaller than a
patch cropped off). The prediction panel colours each pixel by its outcome. Purple: never observed by
the label (left out of every score); dimmed: scored in the previous patch (where the last window of a row
or column is shifted back to the region's border, the pixels it shares are counted once, in the earlier
patch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

#: Region type -> what the paper's panels call it (Supplementary Fig. 1 a-f).
TYPE_NAMES = {
    "NR": "normal lakes",
    "AR": "alongside rivers",
    "BR": "built-up region",
    "IL": "ice lakes",
    "SL": "salt lakes",
}
#: Colours of the prediction panel.
OUTCOME_COLOURS = {
    "lake, correct": (0.15, 0.45, 1.0),
    "false lake": (0.95, 0.2, 0.15),
    "missed lake": (1.0, 0.75, 0.0),
    "not observed": (0.62, 0.45, 0.65),
}


def true_colour(image: np.ndarray, bands: Sequence[str], *, gain: float = 3.5) -> np.ndarray:
    """RGB (rows, cols, 3) in 0..1 from a composite patch (bands, rows, cols) of reflectances 0..1."""
    names = list(bands)
    rgb = np.stack([image[names.index(b)] for b in ("B4", "B3", "B2")], axis=-1).astype(np.float32)
    return np.clip(rgb * gain, 0, 1) ** (1 / 1.3)


#: Brightness of pixels scored in the previous patch.
DIM = 0.4


def _shade(rgb: np.ndarray, valid: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Dim the observed pixels not scored here; mark the pixels never observed."""
    out = np.where((observed & ~valid)[..., None], rgb * DIM + 0.1, rgb)
    out[~observed] = OUTCOME_COLOURS["not observed"]
    return out


def outcome_rgb(
    label: np.ndarray, pred: np.ndarray, valid: np.ndarray, observed: np.ndarray | None = None
) -> np.ndarray:
    """RGB of the prediction against the label: correct lake, false lake, missed lake; black = correct non-lake.

    ``valid``: the pixels scored in this patch; ``observed`` (default ``valid``): the pixels the label observed.
    """
    out = np.zeros((*label.shape, 3), dtype=np.float32)
    y, p = label.astype(bool), pred.astype(bool)
    out[p & y] = OUTCOME_COLOURS["lake, correct"]
    out[p & ~y] = OUTCOME_COLOURS["false lake"]
    out[~p & y] = OUTCOME_COLOURS["missed lake"]
    valid = valid.astype(bool)
    return _shade(out, valid, valid if observed is None else observed.astype(bool) | valid)


def supplementary_fig1(examples: Sequence[Mapping], *, title: str | None = None) -> Figure:
    """One row per example of :func:`lakepaper.train.examples.example_patches`: true colour, label, prediction.

    An empty ``examples`` gives a figure that says there was nothing to show.
    """
    n = max(len(examples), 1)
    fig, axes = plt.subplots(n, 3, figsize=(8.4, 2.75 * n + 0.6), squeeze=False)
    if not examples:
        for ax in axes.ravel():
            ax.axis("off")
        axes[0, 1].text(0.5, 0.5, "no test patch holds lake in label or prediction", ha="center", va="center")
    for ax_row, full in zip(axes, examples, strict=False):
        h, w = int(full.get("height", np.shape(full["label"])[0])), int(full.get("width", np.shape(full["label"])[1]))
        full = {"observed": full["valid"], **full}
        e = {**full, **{k: np.asarray(full[k])[..., :h, :w] for k in ("image", "label", "pred", "valid", "observed")}}
        valid = np.asarray(e["valid"], bool)
        observed = np.asarray(e["observed"], bool) | valid
        ax_row[0].imshow(true_colour(e["image"], e["bands"]))
        label = np.asarray(e["label"], bool)[..., None] * np.ones(3, np.float32)
        ax_row[1].imshow(_shade(label, valid, observed), vmin=0, vmax=1)
        ax_row[2].imshow(outcome_rgb(e["label"], e["pred"], valid, observed))
        s = e["iou"]
        iou = "IoU —" if s is None or (isinstance(s, float) and np.isnan(s)) else f"IoU {100 * s:.1f} %"
        ax_row[0].set_ylabel(
            f"{e['region_type']} ({TYPE_NAMES.get(e['region_type'], '')})\n{e['which']} of {e['of']}: {iou}\n"
            f"{e['region_id']}, patch {e['patch']}",
            fontsize=8,
        )
    for ax, t in zip(axes[0], ["image (true colour)", "label (white: lake)", "prediction"], strict=True):
        ax.set_title(t, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    handles = [Patch(color=c, label=k) for k, c in OUTCOME_COLOURS.items()]
    dimmed = tuple(DIM * c + 0.1 for c in OUTCOME_COLOURS["lake, correct"])
    handles.append(Patch(color=dimmed, label="dimmed: scored in the previous patch"))
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.35 / (2.75 * n + 0.6), 1, 1 - 0.35 / (2.75 * n + 0.6)))  # room for the title
    return fig
