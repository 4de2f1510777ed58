"""What the hardware computes natively, for the choices of arithmetic that depend on it.

Example:
    >>> from lakepaper.hardware import native_bf16
    >>> native_bf16("cpu") in (True, False)
    True
"""

from __future__ import annotations


def native_bf16(device: str) -> bool:
    """Whether ``device`` (``cpu``, ``cuda``, ``cuda:1``) computes bfloat16 in hardware.

    On the CPU this is oneDNN's own test (AVX-512 BF16 or AMX); where bfloat16 is only emulated,
    autocast to it is slower than float32, so the ``auto`` precisions fall back to fp32.
    """
    import torch

    try:
        if device.startswith("cuda"):
            return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # another build of torch: take the safe path
        return False
