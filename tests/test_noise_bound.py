"""training/noise_bound.py: the noise and blocking estimates on known noise and real JPEG blocks,
the bound on a pixel's change, and the network that applies it (tiny configuration)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from training.network import NetConfig, VideoRestorationNet
from training.noise_bound import KNEE, NoiseBound, estimate_blockiness, estimate_noise_sigma, level


def smooth_frame(n: int = 2, h: int = 64, w: int = 80) -> torch.Tensor:
    y = torch.linspace(0.2, 0.8, h).view(1, 1, h, 1)
    x = torch.linspace(0.1, 0.6, w).view(1, 1, 1, w)
    return (0.5 * y + 0.5 * x + 0.05 * torch.sin(x * 20)).expand(n, 3, h, w).contiguous()


@pytest.mark.parametrize("sigma_levels", [1.0, 5.0, 25.0])
def test_the_estimate_finds_the_noise_added_to_a_smooth_frame(sigma_levels: float) -> None:
    torch.manual_seed(0)
    clean = smooth_frame()
    noisy = clean + torch.randn_like(clean) * sigma_levels / 255
    estimate = estimate_noise_sigma(noisy) * 255
    assert estimate.shape == (2, 1, 1, 1)
    assert torch.allclose(estimate, torch.full_like(estimate, sigma_levels), rtol=0.1), estimate.flatten()
    assert estimate_noise_sigma(clean).max() * 255 < 0.1


def test_edges_do_not_count_as_noise() -> None:
    torch.manual_seed(4)
    i = torch.arange(128)
    board = (((i.view(-1, 1) // 16) + (i.view(1, -1) // 16)) % 2).float() * 0.6 + 0.2  # 153-level steps
    frame = board.expand(2, 3, 128, 128) + torch.randn(2, 3, 128, 128) * 2 / 255
    estimate = estimate_noise_sigma(frame) * 255
    assert torch.allclose(estimate, torch.full_like(estimate, 2.0), rtol=0.1), estimate.flatten()


def test_jpeg_blocks_on_their_grid_count_and_clean_or_shifted_frames_show_none() -> None:
    image = cv2.cvtColor(data.chelsea()[:256, :256], cv2.COLOR_RGB2BGR)  # native pixels: no JPEG grid of its own
    jpeg = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], cv2.IMREAD_COLOR)

    def blockiness(bgr: np.ndarray) -> float:
        frame = torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        return float(estimate_blockiness(frame)) * 255

    assert blockiness(jpeg) > 5.0  # measured 6.7 grey levels
    assert blockiness(image) < 0.3
    assert blockiness(jpeg[3:, 5:]) < 0.3  # the same blocks off the frame's 8x8 grid are not counted
    frame = torch.from_numpy(jpeg[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    assert float(level(frame)) >= 2 * blockiness(jpeg) / 255 - 1e-6


def test_a_change_is_bounded_by_the_noise_and_small_changes_pass() -> None:
    torch.manual_seed(1)
    centre = smooth_frame() + torch.randn(2, 3, 64, 80) * 2 / 255
    bound = NoiseBound(3.0)
    sigma = level(centre)
    limit = 3.0 * sigma * (1 + (sigma / KNEE) ** 2)
    big = bound(centre, centre + 0.5)  # a change of 127 grey levels everywhere
    assert ((big - centre).abs() <= limit + 1e-6).all()
    assert ((big - centre) > 0.99 * limit).all()
    small = centre + 0.01 * limit * torch.randn_like(centre)
    assert torch.allclose(bound(centre, small), small, atol=1e-5)


def test_heavy_noise_leaves_the_change_practically_unbounded() -> None:
    torch.manual_seed(2)
    centre = (smooth_frame() + torch.randn(2, 3, 64, 80) * 25 / 255).clamp(0, 1)
    change = 40 / 255 * torch.randn_like(centre)  # what removing sigma-25 noise takes
    out = NoiseBound(3.0)(centre, centre + change)
    # Changes of up to ~180 grey levels come through within 1% (the bound is ~1,400 levels here).
    assert (out - centre - change).abs().max() <= 0.01 * change.abs().max()


def test_a_bounded_network_changes_its_centre_frame_by_at_most_the_bound() -> None:
    torch.manual_seed(3)
    net = VideoRestorationNet(NetConfig(channels=8, frame_channels=4, fusion_blocks=1, noise_bound=3.0)).eval()
    with torch.no_grad():
        for p in net.tail.parameters():
            p.add_(torch.randn_like(p))  # a network that changes a lot
        centre = smooth_frame(1, 32, 32)
        window = centre.unsqueeze(1).expand(1, 5, 3, 32, 32).contiguous()
        out = net(window)
    sigma = level(centre)
    assert ((out - centre).abs() <= (3.0 * sigma * (1 + (sigma / KNEE) ** 2)).clamp_min(1e-4) + 1e-6).all()


@pytest.mark.parametrize("bad", [{"noise_bound": -1.0}, {"noise_bound": 3.0, "scale": 4},
                                 {"noise_bound": 3.0, "masked": True}, {"noise_bound": 3.0, "deconvolved": True}])
def test_the_bound_is_for_plain_denoisers_only(bad: dict) -> None:
    with pytest.raises(ValueError, match="noise_bound"):
        NetConfig(**bad)
