"""The U-Net of the paper (section 2.3), in plain PyTorch.

The architecture follows the facts of the authors' released implementation (MIT; read, not copied):

* a classic 4-level U-Net: encoder blocks of widths ``widths[:4]`` (64, 128, 256, 512), a bottleneck
  of ``widths[4]`` (1024);
* every block is two 3x3 same-padded convolutions, each followed by ReLU;
* batch normalisation after each encoder block (before its 2x2 max-pooling; the skip connection
  leaves after the normalisation) and after each upsampling;
* upsampling by interpolation (``bilinear`` or ``nearest``, factor 2), never a transposed
  convolution; the upsampled features (all channels) are concatenated with the skip connection and
  the decoder block's two convolutions bring them to the skip's width. The authors' Keras
  ``UpSampling2D`` interpolates with its default, nearest neighbour; ``bilinear``
  (``params.unet_upsample``) is this compendium's choice, labelled as such in the departures table
  (:mod:`lakepaper.report.departures`): ``unet_upsample = "nearest"`` follows their code;
* no dropout; a 1x1 convolution to one channel and a sigmoid: the model returns lake
  *probabilities* (B, 1, H, W). The L2 penalty (1e-4) of the authors applies to that layer's
  kernel only (:meth:`UNet.l2_penalty`, added to the loss by :mod:`lakepaper.train.loop`).

Batch normalisation uses PyTorch's defaults (running-average momentum 0.1, epsilon 1e-5); Keras'
defaults differ (momentum 0.99 in its convention, i.e. 0.01 here, and epsilon 1e-3), and the facts
known of the authors' code do not say which they used.

With the paper's widths and 5 input bands this gives 31,385,857 trainable parameters
(:func:`count_parameters`). Inputs must have sides divisible by 16 (four 2x poolings).

Example:
    >>> import torch
    >>> net = UNet(5, (4, 8, 16, 32, 64))
    >>> net(torch.zeros(2, 5, 32, 48)).shape
    torch.Size([2, 1, 32, 48])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from lakepaper.errors import ParameterError

UPSAMPLE_MODES = ("bilinear", "nearest")
LEVELS = 4  # poolings; the input side must be divisible by 2**LEVELS
#: CUDA's channels-last interpolation indexes with 32-bit integers and refuses an output of this many elements or
#: more (``upsample_bilinear2d_nhwc``: batch 64 x 128 channels x 576^2 = 2.7e9); a larger one is made in batch chunks.
MAX_UPSAMPLE_ELEMENTS = 2**31 - 1


def upsample2x(x: torch.Tensor, mode: str) -> torch.Tensor:
    """``x`` interpolated to twice its height and width; made batch chunk by batch chunk when the output would reach
    ``MAX_UPSAMPLE_ELEMENTS`` (each sample is interpolated on its own, so chunked and whole give the same values)."""
    align = False if mode == "bilinear" else None
    per_sample = 4 * x[:1].numel()
    if x.shape[0] * per_sample < MAX_UPSAMPLE_ELEMENTS or x.shape[0] < 2:
        return F.interpolate(x, scale_factor=2, mode=mode, align_corners=align)
    chunk = max(1, (MAX_UPSAMPLE_ELEMENTS - 1) // per_sample)
    parts = [F.interpolate(c, scale_factor=2, mode=mode, align_corners=align) for c in x.split(chunk)]
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return torch.cat(parts, dim=0).contiguous(memory_format=fmt)


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A 4-level U-Net returning sigmoid probabilities.

    Args:
        in_channels: input bands (5: B2, B3, B4, B11, NDWI).
        widths: five channel counts, the four encoder levels and the bottleneck.
        upsample: ``bilinear`` (default) or ``nearest`` interpolation in the decoder.
    """

    def __init__(
        self, in_channels: int = 5, widths: Sequence[int] = (64, 128, 256, 512, 1024), upsample: str = "bilinear"
    ):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != LEVELS + 1 or min(widths) < 1:
            raise ParameterError("unet_widths", f"expected {LEVELS + 1} positive widths, got {widths}")
        if upsample not in UPSAMPLE_MODES:
            raise ParameterError("unet_upsample", f"expected one of {UPSAMPLE_MODES}, got {upsample!r}")
        if int(in_channels) < 1:
            raise ParameterError("in_channels", f"must be positive, got {in_channels}")
        self.in_channels = int(in_channels)
        self.widths = widths
        self.upsample = upsample
        self.down = nn.ModuleList()
        self.down_bn = nn.ModuleList()
        c = self.in_channels
        for w in widths[:LEVELS]:
            self.down.append(_double_conv(c, w))
            self.down_bn.append(nn.BatchNorm2d(w))
            c = w
        self.bottom = _double_conv(c, widths[LEVELS])
        c = widths[LEVELS]
        self.up_bn = nn.ModuleList()
        self.up = nn.ModuleList()
        for w in reversed(widths[:LEVELS]):
            self.up_bn.append(nn.BatchNorm2d(c))
            self.up.append(_double_conv(c + w, w))
            c = w
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> lake probability (B, 1, H, W); H and W divisible by 16."""
        if x.shape[-1] % 2**LEVELS or x.shape[-2] % 2**LEVELS:
            raise ParameterError(
                "patch_size", f"input sides must be divisible by {2**LEVELS}, got {tuple(x.shape[-2:])}"
            )
        skips = []
        for block, bn in zip(self.down, self.down_bn, strict=True):
            x = bn(block(x))
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for block, bn, skip in zip(self.up, self.up_bn, reversed(skips), strict=True):
            x = bn(upsample2x(x, self.upsample))
            x = block(torch.cat([x, skip], dim=1))
        return torch.sigmoid(self.out(x))

    def l2_penalty(self) -> torch.Tensor:
        """Sum of squares of the output layer's kernel (the authors' L2 term, before its factor)."""
        return self.out.weight.float().pow(2).sum()

    def config(self) -> dict:
        """What rebuilds this architecture: ``UNet(**net.config())``."""
        return {"in_channels": self.in_channels, "widths": list(self.widths), "upsample": self.upsample}


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def conv_flops(model: UNet, height: int, width: int) -> int:
    """Forward FLOPs of one (height x width) input, counted analytically: 2 x multiply-adds of every convolution.

    Only convolutions count (they are > 99 % of the work); BatchNorm, ReLU, pooling and
    interpolation are left out. A training step costs about 3x this (forward, and backward for
    inputs and for weights).
    """
    flops = 0
    size = {}  # a conv's output side at each level, found by tracing the shapes once
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: size.__setitem__(mod, out.shape[-2] * out.shape[-1]))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        p = next(model.parameters())
        with torch.no_grad():
            training = model.training
            model.eval()
            model(torch.zeros(1, model.in_channels, height, width, dtype=p.dtype, device=p.device))
            model.train(training)
    finally:
        for h in hooks:
            h.remove()
    for m, pixels in size.items():
        k = m.kernel_size[0] * m.kernel_size[1]
        flops += 2 * pixels * m.in_channels * m.out_channels * k // m.groups
    return flops
