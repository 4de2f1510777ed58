"""The U-Net of section 2.3: shapes, the paper's size (about 31 M parameters), one paper-width step on CPU."""

from __future__ import annotations

import pytest
import torch

from lakepaper import params
from lakepaper.errors import ParameterError
from lakepaper.train.loss import dice_loss
from lakepaper.unet import UNet, conv_flops, count_parameters

TINY = (4, 8, 16, 32, 64)
PAPER_PARAMETERS = 31_385_857  # 5 input bands, widths 64-128-256-512-1024, interpolation upsampling


@pytest.mark.parametrize("upsample", ["bilinear", "nearest"])
@pytest.mark.parametrize(("b", "h", "w"), [(1, 16, 16), (2, 32, 48), (3, 64, 16), (1, 80, 112)])
def test_output_has_the_input_size_and_is_a_probability(upsample, b, h, w):
    torch.manual_seed(0)
    net = UNet(5, TINY, upsample).eval()
    with torch.no_grad():
        y = net(torch.randn(b, 5, h, w))
    assert y.shape == (b, 1, h, w)
    assert ((y >= 0) & (y <= 1)).all()


@pytest.mark.bad_input
@pytest.mark.parametrize("shape", [(1, 5, 24, 32), (1, 5, 32, 40)])
def test_sides_not_divisible_by_16_are_refused(shape):
    with pytest.raises(ParameterError, match="divisible by 16"):
        UNet(5, TINY)(torch.zeros(shape))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"widths": (4, 8, 16, 32)}, "unet_widths"),
        ({"widths": (4, 0, 16, 32, 64)}, "unet_widths"),
        ({"upsample": "transposed"}, "unet_upsample"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_bad_architecture_parameters_are_named(kwargs, name):
    with pytest.raises(ParameterError) as err:
        UNet(**{"in_channels": 5, "widths": TINY, **kwargs})
    assert err.value.name == name


def test_architecture_has_no_transposed_convolution_and_no_dropout():
    net = UNet(5, TINY)
    kinds = {type(m).__name__ for m in net.modules()}
    assert "ConvTranspose2d" not in kinds and not any("Dropout" in k for k in kinds)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 8  # 4 encoder blocks + 4 upsamplings
    assert net.out.kernel_size == (1, 1) and net.out.out_channels == 1


def test_paper_profile_has_the_papers_size(capsys):
    p = params.resolve("paper")
    net = UNet(p["in_channels"], p["unet_widths"], p["unet_upsample"])
    n = count_parameters(net)
    with capsys.disabled():
        print(f"\npaper U-Net: {n:,} trainable parameters")
    assert n == PAPER_PARAMETERS
    assert 30e6 <= n <= 32e6


def test_one_training_step_of_the_paper_width_model_on_cpu():
    p = params.resolve("paper")
    torch.manual_seed(0)
    net = UNet(p["in_channels"], p["unet_widths"], p["unet_upsample"]).train()
    opt = torch.optim.Adadelta(net.parameters(), lr=p["learning_rate"], rho=p["adadelta_rho"], eps=p["adadelta_eps"])
    x = torch.rand(1, 5, 64, 64)  # reduced patch size, batch 1
    y = (x[:, 4:5] > 0.5).float()
    before = net.out.weight.detach().clone()
    loss = dice_loss(net(x), y, smooth=p["dice_smooth"]) + p["l2_output"] * net.l2_penalty()
    loss.backward()
    assert all(q.grad is not None and torch.isfinite(q.grad).all() for q in net.parameters())
    opt.step()
    assert torch.isfinite(loss) and 0 < float(loss.detach()) < 1.01
    assert not torch.equal(before, net.out.weight)


def test_l2_penalty_is_the_output_kernel_only():
    net = UNet(5, TINY)
    assert torch.isclose(net.l2_penalty(), (net.out.weight**2).sum())
    net.out.weight.data.zero_()
    assert float(net.l2_penalty().detach()) == 0.0


def test_analytic_flops_equal_torchs_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    net = UNet(5, TINY).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 5, 64, 48))
    assert conv_flops(net, 64, 48) == counter.get_total_flops()


def test_config_rebuilds_the_architecture():
    net = UNet(5, TINY, "nearest")
    again = UNet(**net.config())
    assert again.config() == net.config() == {"in_channels": 5, "widths": list(TINY), "upsample": "nearest"}
    again.load_state_dict(net.state_dict())


def test_paper_batch_64_upsampling_is_chunked_below_the_int32_limit(monkeypatch):
    from lakepaper import unet

    # the last decoder upsampling of the paper's model at batch 64, 576 px: 128 channels, 288^2 -> 576^2
    # (shapes only: a tensor on the meta device holds no memory)
    x = torch.empty(64, 128, 288, 288, device="meta").contiguous(memory_format=torch.channels_last)
    assert 4 * x.numel() >= unet.MAX_UPSAMPLE_ELEMENTS  # what CUDA's NHWC kernel refuses
    sizes = []
    interpolate = unet.F.interpolate
    monkeypatch.setattr(unet.F, "interpolate", lambda t, **kw: sizes.append(4 * t.numel()) or interpolate(t, **kw))
    y = unet.upsample2x(x, "bilinear")
    assert y.shape == (64, 128, 576, 576) and len(sizes) > 1
    assert max(sizes) < unet.MAX_UPSAMPLE_ELEMENTS and sum(sizes) == y.numel()
    sizes.clear()
    unet.upsample2x(x[:32], "bilinear")  # batch 32 ran: one call
    assert len(sizes) == 1


@pytest.mark.parametrize("upsample", ["bilinear", "nearest"])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_upsampling_past_the_limit_is_chunked_and_unchanged(monkeypatch, upsample, fmt):
    from lakepaper import unet

    torch.manual_seed(0)
    x = torch.randn(7, 3, 8, 10).contiguous(memory_format=fmt)
    whole = unet.upsample2x(x, upsample)
    calls = []
    interpolate = unet.F.interpolate
    monkeypatch.setattr(unet.F, "interpolate", lambda t, **kw: calls.append(t.shape[0]) or interpolate(t, **kw))
    monkeypatch.setattr(unet, "MAX_UPSAMPLE_ELEMENTS", 3 * 3 * 16 * 20 + 1)  # 3 samples' output fit below it
    chunked = unet.upsample2x(x, upsample)
    assert calls == [3, 3, 1]
    assert torch.equal(chunked, whole) and chunked.is_contiguous(memory_format=fmt)
    net = UNet(3, TINY, upsample).eval().to(memory_format=fmt)
    batch = torch.randn(5, 3, 32, 32).contiguous(memory_format=fmt)
    monkeypatch.setattr(unet, "MAX_UPSAMPLE_ELEMENTS", 2**31 - 1)
    calls.clear()
    with torch.no_grad():
        ref = net(batch)
        assert calls == [5, 5, 5, 5]
        monkeypatch.setattr(unet, "MAX_UPSAMPLE_ELEMENTS", 3 * 8 * 32 * 32)  # only the last (8 ch): 2 a call
        calls.clear()
        got = net(batch)
    assert calls == [5, 5, 5, 2, 2, 1]
    assert torch.equal(got, ref)
