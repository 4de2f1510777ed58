"""The trained model as a plain function from windows to probabilities, in the precision chosen.

``precision``:

* ``fp32``: float32 eager PyTorch, the reference;
* ``bf16``: bfloat16 autocast (CPU matrix units, or CUDA), channels-last memory layout.

The benchmark (``benchmarks/predict.py``) measures both on this machine and the IoU change
between them on the test regions; the stage's default is in ``params["predict_precision"]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from lakepaper.errors import ParameterError

PRECISIONS = ("fp32", "bf16")


def make_forward(model, precision: str = "fp32", device: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a module that maps (B, C, H, W) to sigmoid probabilities (B, 1, H, W)."""
    import torch

    if precision not in PRECISIONS:
        raise ParameterError("precision", f"expected one of {PRECISIONS}, got {precision!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    fmt = torch.channels_last if precision == "bf16" else torch.contiguous_format
    model = model.to(memory_format=fmt)

    def forward(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device).contiguous(memory_format=fmt)
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            y = model(t)
        return y.float()[:, 0].cpu().numpy()

    return forward


def load_forward(
    checkpoint: str | os.PathLike[str], *, precision: str = "fp32"
) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[str, ...], int]:
    """Load a stage-03 checkpoint: (forward, the band order it was trained on, its patch size)."""
    from lakepaper.train.checkpoint import load_model

    model, meta = load_model(checkpoint)
    return make_forward(model, precision), tuple(meta["bands"]), int(meta["patch_size"])
