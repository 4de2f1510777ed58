"""The trained model as a plain function from windows to probabilities, in the precision chosen.

``precision``:

* ``fp32``: float32 eager PyTorch, the reference;
* ``bf16``: bfloat16 autocast (CPU matrix units, or CUDA), channels-last memory layout;
* ``auto`` (the default, ``params["predict_precision"]``): ``bf16`` where the hardware computes in
  bfloat16 natively (oneDNN reports it on this CPU; CUDA with bf16 support), else ``fp32``.

On CUDA, ``cudnn.benchmark`` is switched on (every call has the same window shape, so cuDNN's
timed choice of convolution algorithm pays once) and windows move through pinned host memory.

The benchmark (``benchmarks/predict.py``) measures both on this machine and how many pixels change
class between them: on the 2-core AVX-512 machine of the README, bf16 ran 3.5-4.5x faster than fp32
and changed no pixel's class.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from lakepaper.errors import ParameterError

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: str | None = None) -> str:
    """``fp32`` or ``bf16``: ``auto`` becomes bf16 where the device computes bfloat16 natively."""
    import torch

    if precision not in PRECISIONS:
        raise ParameterError("precision", f"expected one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    from lakepaper.hardware import native_bf16

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    native = native_bf16(device)
    return "bf16" if native else "fp32"


def make_forward(model, precision: str = "fp32", device: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a module that maps (B, C, H, W) to sigmoid probabilities (B, 1, H, W).

    The function returned carries ``device`` (``"cpu"``, ``"cuda"``...), which
    :func:`lakepaper.predict.tiled.predict_tile` reads to choose its strip loop. On CUDA, cuDNN picks its
    fastest convolution algorithms for the window shape (``cudnn.benchmark``: the shape is the same for
    every call) and the windows travel through pinned host memory with non-blocking copies.
    """
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(precision, device)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    model = model.to(device).eval()
    fmt = torch.channels_last if precision == "bf16" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    kind = torch.device(device).type

    def forward(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x))
        if cuda and not t.is_pinned():  # pinned (page-locked) staging: the copy runs as DMA, without a bounce buffer
            t = t.pin_memory()
        t = t.to(device, non_blocking=cuda).contiguous(memory_format=fmt)
        with torch.inference_mode(), torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16"):
            y = model(t).float()[:, 0]
        if not cuda:
            return y.numpy()
        host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        host.copy_(y, non_blocking=True)
        torch.cuda.current_stream(y.device).synchronize()  # the copy has landed before numpy sees it
        return host.numpy()

    forward.device = kind
    if cuda:

        def empty(shape: tuple[int, ...]) -> np.ndarray:
            """A float32 host array in pinned memory (torch's caching host allocator reuses it once freed and
            copied), for the strip loop to stack windows into: then no staging copy is needed before the transfer."""
            return torch.empty(shape, dtype=torch.float32, pin_memory=True).numpy()

        forward.empty = empty
    return forward


def load_forward(
    checkpoint: str | os.PathLike[str], *, precision: str = "fp32"
) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[str, ...], int]:
    """Load a stage-03 checkpoint: (forward, the band order it was trained on, its patch size)."""
    from lakepaper.train.checkpoint import load_model

    model, meta = load_model(checkpoint)
    return make_forward(model, precision), tuple(meta["bands"]), int(meta["patch_size"])
