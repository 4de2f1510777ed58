"""The trained model as a plain function from windows to probabilities, in the precision chosen.

``precision``:

* ``fp32``: float32 eager PyTorch, the reference;
* ``bf16``: bfloat16 autocast (CPU matrix units, or CUDA), channels-last memory layout;
* ``auto`` (the default, ``params["predict_precision"]``): ``bf16`` where the hardware computes in
  bfloat16 natively (oneDNN reports it on this CPU; CUDA with bf16 support), else ``fp32``.

``compile`` (:data:`COMPILES`):

* ``off``: eager PyTorch;
* ``default``, ``reduce-overhead`` (adds CUDA graphs), ``max-autotune``: ``torch.compile`` in that mode,
  with static shapes. Compiling is lazy (at the first call, in the process that calls: each Dask worker
  compiles its own) and costs tens of seconds once; should it fail (no C compiler for inductor, an
  unsupported build), the call warns and runs eager from then on;
* ``auto`` (the default): :data:`AUTO_COMPILE` per device type. On CUDA, ``default``: the issue's H200
  measurement, bf16 autocast + channels-last at the paper widths, 0.48 of the bf16 matmul rate compiled
  against 0.175 eager (``benchmarks/predict_gpu.py`` measures eager, ``default`` and ``reduce-overhead``
  and says which one ``auto`` should run). On the CPU, ``off``: on the 2-core AMD EPYC (AVX-512 bf16) of
  this session, demo profile, bf16 (what ``auto`` precision picks there), batches of 8 windows of 128 px,
  compiled ran the raw forward at 0.89-1.09x eager (four runs) and ``predict_tile`` at 0.96x (2048 px tile,
  best of 4 each) and 1.54x (3072 px tile, best of 3), with single pairs from 0.3x to 3.7x: the machine was
  shared (load 3-7 on 2 cores), so no gain was shown, for a compile of 27-33 s in every worker (3-5 s with
  inductor's cache warm). In fp32, compiled ran at 1.7-2.2x fp32 eager, still slower than bf16 eager. The
  outputs were the same bytes either way.

A compiled model is specialised to one batch shape, so with ``compile`` on, a call with fewer windows
than a batch already compiled (the last batch of a strip) is padded with zero windows to the smallest
such batch and the padding's output dropped (``pad``): one graph (and one CUDA graph) serves both. So
that padding wastes little, a batch that would be more than ``MAX_PAD_WASTE`` padding gets a graph of its
own instead, up to ``MAX_GRAPHS`` batch shapes per model call (then it is padded whatever the waste): a
strip of 25 windows in batches of 16 runs as 16 + 9 with two graphs, not as 16 + 16 with 7 windows of
zeros. The model runs in eval mode, where each window's output depends on that window alone, so padding
changes no value (tested). Compiled and eager outputs differ by floating-point rounding only, as
outputs with another number of threads do: neither is part of a tile's ``RUN_ID``.

On CUDA, ``cudnn.benchmark`` is switched on (every call has the same window shape, so cuDNN's
timed choice of convolution algorithm pays once) and windows move through pinned host memory.

The benchmark (``benchmarks/predict.py``) measures both on this machine and how many pixels change
class between them: on the 2-core AVX-512 machine of the README, bf16 ran 3.5-4.5x faster than fp32
and changed no pixel's class.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import numpy as np

from lakepaper.errors import ParameterError

PRECISIONS = ("auto", "fp32", "bf16")
#: Modes of ``compile``: ``off`` is eager PyTorch, the others ``torch.compile``'s modes.
COMPILES = ("auto", "off", "default", "reduce-overhead", "max-autotune")
#: What ``compile="auto"`` runs, by the device type of the model call (anything not listed: ``off``).
AUTO_COMPILE = {"cpu": "off", "cuda": "default"}
#: Padding a batch to a compiled one is refused when more than this share of it would be padding ...
MAX_PAD_WASTE = 0.25
#: ... unless the model call has this many batch shapes (graphs) already.
MAX_GRAPHS = 4


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


def resolve_compile(compile: str, device: str = "cpu") -> str:
    """``off`` or a ``torch.compile`` mode: ``auto`` becomes :data:`AUTO_COMPILE`'s choice for ``device``.

    Raises:
        ParameterError: ``compile`` not one of :data:`COMPILES`.
    """
    if compile not in COMPILES:
        raise ParameterError("compile", f"expected one of {COMPILES}, got {compile!r}")
    if compile != "auto":
        return compile
    return AUTO_COMPILE.get(str(device).split(":")[0], "off")


def make_forward(
    model,
    precision: str = "fp32",
    device: str | None = None,
    *,
    compile: str = "auto",
    pad: bool | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a module that maps (B, C, H, W) to sigmoid probabilities (B, 1, H, W).

    The function returned carries ``device`` (``"cpu"``, ``"cuda"``...), which
    :func:`lakepaper.predict.tiled.predict_tile` reads to choose its strip loop, and ``compile`` (the mode
    it runs: ``off`` again if compiling failed). On CUDA, cuDNN picks its fastest convolution algorithms for
    the window shape (``cudnn.benchmark``: the shape is the same for every call) and the windows travel
    through pinned host memory with non-blocking copies.

    Args:
        model: the network (moved to ``device``, put in eval mode).
        precision: ``fp32``, ``bf16`` or ``auto`` (:func:`resolve_precision`).
        device: ``cpu``, ``cuda``, ``cuda:1``... (default: CUDA if available).
        compile: ``auto``, ``off`` or a ``torch.compile`` mode (:func:`resolve_compile`).
        pad: pad a smaller batch with zero windows to a batch already run (within ``MAX_PAD_WASTE`` and
            ``MAX_GRAPHS``; default: when compiled).

    Raises:
        ParameterError: an unknown ``precision`` or ``compile``.
    """
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(precision, device)
    kind = torch.device(device).type
    mode = resolve_compile(compile, kind)
    pad = mode != "off" if pad is None else bool(pad)
    cuda = kind == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    model = model.to(device).eval()
    fmt = torch.channels_last if precision == "bf16" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    # compiled lazily, at the first call (torch.compile only wraps here); static shapes: one graph per batch shape
    state = {"compiled": torch.compile(model, mode=mode, dynamic=False) if mode != "off" else None}
    shapes: set[int] = set()  # the batch sizes run so far (with compile: one graph each)

    def target(n: int) -> int:
        """The batch a call of ``n`` windows runs as: ``n``, or a larger one already run (padded)."""
        larger = [b for b in shapes if b >= n] if pad else []
        if larger and (min(larger) * (1 - MAX_PAD_WASTE) <= n or len(shapes) >= MAX_GRAPHS):
            return min(larger)
        shapes.add(n)
        return n

    def run(t: torch.Tensor) -> torch.Tensor:
        compiled = state["compiled"]
        if compiled is None:
            return model(t)
        if mode == "reduce-overhead" and cuda:
            torch.compiler.cudagraph_mark_step_begin()  # the last call's outputs were copied out: reuse its buffers
        try:
            return compiled(t)
        except Exception as exc:  # a compile failure (or a real error, which the eager call raises again)
            y = model(t)
            state["compiled"], forward.compile = None, "off"
            warnings.warn(
                f"torch.compile (mode {mode!r}) failed, running eager from now on: {type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                RuntimeWarning,
                stacklevel=3,
            )
            return y

    def forward(x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        full = target(n)
        t = torch.from_numpy(np.ascontiguousarray(x))
        if cuda and not t.is_pinned():  # pinned (page-locked) staging: the copy runs as DMA, without a bounce buffer
            t = t.pin_memory()
        t = t.to(device, non_blocking=cuda)
        if full > n:  # the last batch of a strip: zero windows up to the batch the compiled graph was made for
            t = torch.cat((t, t.new_zeros((full - n, *t.shape[1:]))))
        t = t.contiguous(memory_format=fmt)
        with torch.inference_mode(), torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16"):
            y = run(t)[:n, 0].float()
        if not cuda:
            return y.numpy()
        host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        host.copy_(y, non_blocking=True)
        torch.cuda.current_stream(y.device).synchronize()  # the copy has landed before numpy sees it
        return host.numpy()

    forward.device = kind
    forward.compile = mode
    if cuda:

        def empty(shape: tuple[int, ...]) -> np.ndarray:
            """A float32 host array in pinned memory (torch's caching host allocator reuses it once freed and
            copied), for the strip loop to stack windows into: then no staging copy is needed before the transfer."""
            return torch.empty(shape, dtype=torch.float32, pin_memory=True).numpy()

        forward.empty = empty
    return forward


def load_forward(
    checkpoint: str | os.PathLike[str], *, precision: str = "fp32", compile: str = "auto", device: str | None = None
) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[str, ...], int]:
    """Load a stage-03 checkpoint: (forward, the band order it was trained on, its patch size).

    Args:
        checkpoint: the ``.pt`` file of stage 03.
        precision, compile, device: see :func:`make_forward`.
    """
    from lakepaper.train.checkpoint import load_model

    model, meta = load_model(checkpoint)
    forward = make_forward(model, precision, device, compile=compile)
    return forward, tuple(meta["bands"]), int(meta["patch_size"])
