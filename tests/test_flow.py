"""Optical flow and warping in torch (training/flow.py), the alignment an aligned network runs
inside its own graph: real frames moved by a known camera pan come back onto the centre, a known
sub-pixel motion is recovered, and any frame size works."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from training import flow
from training.data import load_clip
from training.evaluate import psnr


def panned_window(shift: int = 6, size: tuple[int, int] = (96, 128), sigma: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Five crops of one real frame, the camera panning `shift` px right per frame, plus noise;
    and the clean centre crop (uint8)."""
    frame = load_clip("carphone_pristine.mp4", max_frames=1)[0]
    h, w = size
    y0, x0 = 20, 2 * shift + 4
    crops = np.stack([frame[y0 : y0 + h, x0 + k * shift : x0 + k * shift + w] for k in range(-2, 3)])
    noisy = np.clip(crops + np.random.default_rng(0).normal(0, sigma, crops.shape), 0, 255).astype(np.uint8)
    return noisy, crops[2]


def to_torch(window: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(window).float().permute(0, 3, 1, 2).unsqueeze(0) / 255


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames[0].permute(0, 2, 3, 1).clamp(0, 1) * 255).round().byte().numpy()


def test_neighbours_land_on_the_centre_frame():
    window, clean_centre = panned_window(shift=3)
    aligned = to_uint8(flow.align_window(to_torch(window)))
    assert aligned.shape == window.shape
    assert np.array_equal(aligned[2], window[2])
    inner = (slice(8, -8), slice(20, -20))  # away from the borders the pan uncovers
    for t in (0, 1, 3, 4):
        before = psnr(window[t][inner], clean_centre[inner])
        after = psnr(aligned[t][inner], clean_centre[inner])
        # Aligned neighbours come close to the clean centre (sigma 10 noise alone: 28 dB).
        assert after > 25 and after > before + 5, f"frame {t}: {before:.1f} -> {after:.1f} dB"


def test_low_resolution_frames_align_better_at_stride_one():
    """sr4's inputs are a quarter of the frame's size: flow at 1/4 of that is too coarse for them.
    A panned window downscaled x4: every pixel's flow (stride 1) lands the neighbours closer to the
    centre than the default stride, and the output keeps the window's shape."""
    window, _ = panned_window(shift=6, sigma=0)
    small = to_torch(window)[..., ::4, ::4]
    inner = (slice(None), slice(None), slice(3, -3), slice(6, -6))

    def mismatch(aligned: torch.Tensor) -> float:
        return max(float((aligned[0, t] - aligned[0, 2])[inner[1:]].abs().mean()) for t in (0, 1, 3, 4))

    fine, coarse = flow.align_window(small, stride=1), flow.align_window(small)
    assert fine.shape == small.shape and torch.equal(fine[:, 2], small[:, 2])
    assert mismatch(fine) < 0.6 * mismatch(coarse), (mismatch(fine), mismatch(coarse))


@pytest.mark.parametrize("motion", [(2.5, -1.25), (-7.0, 3.5)])
def test_a_known_subpixel_motion_is_recovered(motion):
    """A real frame resampled at x + motion: the flow from it back is motion, to 0.25 px."""
    frame = load_clip("carphone_pristine.mp4", max_frames=1)[0][:128, :160]
    reference = to_torch(frame[np.newaxis])[0]
    shift = torch.tensor(motion).view(1, 2, 1, 1).expand(1, 2, *reference.shape[-2:])
    # other(x + motion) = reference(x): other is the reference sampled at x - motion.
    other = flow.warp(reference, -shift)
    greys = flow.flow_images(torch.cat([reference, other]))
    estimate = flow.dense_flow(greys[:1], greys[1:], *reference.shape[-2:])
    inner = estimate[0, :, 16:-16, 16:-16].flatten(1).median(dim=1).values
    assert torch.allclose(inner, torch.tensor(motion), atol=0.25), inner


def test_warp_by_zero_flow_is_the_identity_and_points_outside_are_flagged():
    x = torch.rand(2, 3, 7, 9)
    zero = torch.zeros(2, 2, 7, 9)
    assert torch.allclose(flow.warp(x, zero), x, atol=1e-6)
    right = torch.zeros(2, 2, 7, 9)
    right[:, 0] = 2.0
    out = flow.off_frame(flow.landing(right))
    assert out[..., -2:].all() and not out[..., :-2].any()


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (37, 53)])
def test_points_off_the_frame_repeat_its_border_pixels(mode, size):
    """`sample` clamps to the outer pixel centres and pads with zeros (ONNX Runtime's fast
    path); that must be GridSample's border padding exactly, on and off the frame."""
    h, w = size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, h, w, generator=gen)
    ax, ay = torch.rand(2, h, w, generator=gen) * (w + 10) - 5, torch.rand(2, h, w, generator=gen) * (h + 10) - 5
    ax[0, 0, 0], ay[0, 0, 0], ax[1, 0, 0], ay[1, 0, 0] = w - 1, h - 1, 0, -0.5  # exactly on the edges
    grid = torch.stack([(2 * ax + 1) / w - 1, (2 * ay + 1) / h - 1], dim=-1)
    border = torch.nn.functional.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
    torch.testing.assert_close(flow.sample(x, (ax, ay), mode), border, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (17, 33), (40, 31)])
def test_any_frame_size_and_a_single_frame_window(size):
    frames = torch.rand(2, 5, 3, *size)
    aligned = flow.align_window(frames)
    assert aligned.shape == frames.shape and torch.isfinite(aligned).all()
    assert torch.equal(aligned[:, 2], frames[:, 2])
    single = frames[:, 2:3]
    assert flow.align_window(single) is single


def test_a_still_window_is_left_as_it_is():
    window, _ = panned_window(shift=0, sigma=0)
    aligned = flow.align_window(to_torch(window))
    assert (aligned - to_torch(window)).abs().max() < 2 / 255


def test_content_leaving_the_frame_does_not_corrupt_the_flow_around_it():
    """A 32 px pan between two 192x192 crops of a photograph: the band that leaves the frame has
    no match, and its flow must not spread inwards (without the match term in the confidence it
    did, by tens of pixels)."""
    frame = skimage.data.astronaut()
    shift, h, w = 32, 192, 192
    pair = np.stack([frame[100 : 100 + h, 100 : 100 + w], frame[100 : 100 + h, 100 + shift : 100 + shift + w]])
    grey = flow.flow_images(torch.from_numpy(pair).float().permute(0, 3, 1, 2) / 255)
    both = flow.dense_flow(grey[[0, 1]], grey[[1, 0]], h, w)
    forward, backward = both[0], both[1]
    # Each direction, wherever its own frame's pixel is still in the other frame.
    seen_forward, seen_backward = slice(shift, None), slice(None, w - shift)
    assert (forward[0, :, seen_forward] + shift).abs().median() < 1.0
    assert (backward[0, :, seen_backward] - shift).abs().median() < 1.0
    worst_row = max(float((forward[0, r, seen_forward] + shift).abs().median()) for r in range(h))
    assert worst_row < 3.0, worst_row
