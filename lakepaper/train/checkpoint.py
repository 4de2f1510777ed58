"""Checkpoints that carry what is needed to use them correctly.

A checkpoint is one ``torch.save`` file (written atomically: a killed run leaves the previous
file whole) holding a dict:

``format``      1
``model``       the architecture (``UNet(**model)``): in_channels, widths, upsample
``bands``       the band order the model was trained on, e.g. ``["B2", "B3", "B4", "B11", "NDWI"]``
``patch_size``  the patch side it was trained at
``params``      every training parameter used (name -> value)
``epoch``, ``val_loss``, ``metrics``   where it comes from in the run
``state``       the model's ``state_dict``

The last-epoch checkpoint of a run (``last.pt``) also holds ``resume``: the optimizer and loss
scaler states, the history, the early-stopping counters and a fingerprint of the parameters and
data, so :func:`lakepaper.train.loop.train` can continue it.

:func:`load_model` refuses a checkpoint whose band order differs from the one the caller will feed,
so inference cannot pair a model with the wrong bands.

Example:
    >>> model, meta = load_model("build/demo/03_train/best.pt", bands=BANDS)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lakepaper import io
from lakepaper.errors import InputError
from lakepaper.unet import UNet

FORMAT = 1


def plain(value: Any) -> Any:
    """Parameters as builtins only (tuples become lists), so checkpoints load with ``weights_only=True``."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):  # numpy scalars
        return value.item()
    return value


def save_checkpoint(
    path: str | os.PathLike[str],
    model: UNet,
    *,
    bands: Sequence[str],
    patch_size: int,
    params: Mapping[str, Any],
    epoch: int,
    val_loss: float,
    metrics: Mapping[str, float],
    resume: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (see the module doc for its contents)."""
    state = {
        "format": FORMAT,
        "model": model.config(),
        "bands": list(bands),
        "patch_size": int(patch_size),
        "params": plain(params),
        "epoch": int(epoch),
        "val_loss": float(val_loss),
        "metrics": plain(metrics),
        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    if resume is not None:
        state["resume"] = resume
    path = Path(path)
    # saved through a file object: torch.save names the archive inside after a path it is given, and
    # the temporary path holds the process id, so equal checkpoints would differ in their bytes
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> dict:
    """The checkpoint's dict (tensors on the CPU).

    Raises:
        InputError: the file is missing or is not a lakepaper checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no checkpoint here: run the 03_train stage first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, foreign pickle
        raise InputError(path, f"not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT or "state" not in state:
        raise InputError(path, f"not a lakepaper checkpoint of format {FORMAT}")
    return state


def load_model(
    path: str | os.PathLike[str], *, bands: Sequence[str] | None = None, device: str | torch.device = "cpu"
) -> tuple[UNet, dict]:
    """The trained model (in eval mode) and its metadata (every entry but ``state`` and ``resume``).

    Args:
        path: a checkpoint written by stage 03 (``best.pt``).
        bands: the band order of the data the model will see; refused unless it is the order the
            model was trained on. None: no check (read ``meta["bands"]`` and order the data by it).
        device: where the model goes.

    Raises:
        InputError: missing or unreadable file, or a band order other than the model's.
    """
    state = read_checkpoint(path)
    trained = tuple(state["bands"])
    if bands is not None and tuple(bands) != trained:
        raise InputError(
            path,
            f"the model was trained on bands {trained} in this order; the data given has {tuple(bands)}. "
            "Reorder the data's bands (or use a model trained on them).",
        )
    cfg = state["model"]
    model = UNet(cfg["in_channels"], tuple(cfg["widths"]), cfg["upsample"])
    model.load_state_dict(state["state"])
    model.to(device).eval()
    meta = {k: v for k, v in state.items() if k not in ("state", "resume")}
    return model, meta
