"""training/upsample.py: bicubic upsampling from Conv and DepthToSpace, the numbers of torch's bicubic."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.network import NetConfig, VideoRestorationNet
from training.upsample import CubicUpsample, phase_taps


@pytest.mark.parametrize("scale", [2, 4])
def test_cubic_upsample_matches_torch_bicubic_borders_included(scale):
    x = torch.rand(2, 3, 7, 11) * 2 - 0.5  # outside [0, 1] too: nothing is clamped
    expected = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    assert torch.allclose(CubicUpsample(scale)(x), expected, atol=1e-5)


def test_each_phase_is_an_interpolation():
    taps = phase_taps(4)
    assert torch.allclose(taps.sum(dim=1), torch.ones(4, dtype=taps.dtype))  # flat stays flat
    assert torch.allclose(taps.flip(0), taps.flip(1))  # phases mirror about the pixel centre


def test_sr_network_adds_its_residual_to_the_chosen_upsample():
    frames = torch.rand(1, 3, 3, 8, 8)
    outputs = {}
    for upsample in ("bilinear", "bicubic"):
        net = VideoRestorationNet(NetConfig(frames=3, scale=4, channels=8, frame_channels=4, fusion_blocks=1,
                                            unshuffle=1, upsample=upsample)).eval()
        torch.nn.init.zeros_(net.tail.weight), torch.nn.init.zeros_(net.tail.bias)  # no residual
        with torch.no_grad():
            outputs[upsample] = net(frames)
    centre = frames[:, 1]
    assert torch.allclose(outputs["bicubic"], F.interpolate(centre, scale_factor=4, mode="bicubic"), atol=1e-5)
    assert torch.allclose(outputs["bilinear"], F.interpolate(centre, scale_factor=4, mode="bilinear"), atol=1e-6)
    with pytest.raises(ValueError, match="upsample"):
        NetConfig(upsample="lanczos")
