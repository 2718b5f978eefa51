"""The inpaint task in training: the masked network's guarantees on real video, its data and its
validation set."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from benchmarks.inpaint_quality import distance_table
from training.data import WindowDataset, load_clip
from training.evaluate import masked_psnr, validation_set
from training.masks import random_mask_window
from training.fill import DETAIL_KNEE, harmonic_fill, network_share, pull_push_fill
from training.network import NetConfig, VideoRestorationNet
from training.processing import ServingNet, pack_masks


def _net(config: NetConfig = NetConfig(masked=True)) -> VideoRestorationNet:
    torch.manual_seed(0)
    net = VideoRestorationNet(config).eval()
    # Perturb every weight so the test does not rely on the near-identity initialisation.
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def _real_window() -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (1, 5, 72, 88, 3) frames of a real clip (odd size: exercises padding) and masks."""
    window = load_clip("carphone_pristine.mp4", max_frames=5)[None, :, :72, :88]
    masks = random_mask_window(5, 72, 88, np.random.default_rng(3))[None, ..., None]
    return torch.from_numpy(np.ascontiguousarray(window)), torch.from_numpy(masks)


@torch.no_grad()
def test_known_pixels_bit_exact_and_hidden_pixels_ignored():
    serving = ServingNet(_net())
    window, masks = _real_window()
    packed = torch.from_numpy(pack_masks(masks.numpy()))  # as the window model sends them
    out = serving(window, packed)
    keep = masks[:, 2, ..., 0] == 0
    assert torch.equal(out[keep], window[:, 2][keep])
    # Whatever is under the masks (the object to remove) must not leak into the result.
    scribbled = torch.where(masks > 0, torch.randint_like(window, 0, 256), window)
    assert torch.equal(serving(scribbled, packed), out)


def test_pull_push_keeps_known_pixels_and_fills_holes_smoothly():
    frame = torch.from_numpy(load_clip("carphone_pristine.mp4", max_frames=1)[0]).permute(2, 0, 1)[None].float() / 255
    hole = torch.zeros(1, 1, *frame.shape[-2:])
    hole[..., 40:80, 50:90] = 1
    filled = pull_push_fill(frame * (1 - hole), 1 - hole)
    assert torch.allclose(filled * (1 - hole), frame * (1 - hole), atol=1e-6)
    inside = hole.bool().expand_as(frame)
    assert (filled[inside] - frame[inside]).abs().mean() < (0.5 - frame[inside]).abs().mean()  # beats grey
    # A smooth ramp through the hole is interpolated closely (a 40-pixel hole spans 0.2 of it).
    ramp = torch.linspace(0, 1, frame.shape[-1]).expand_as(frame).contiguous()
    filled = pull_push_fill(ramp * (1 - hole), 1 - hole)
    assert (filled[inside] - ramp[inside]).abs().max() < 0.06


def test_harmonic_fill_keeps_known_pixels_and_fills_thin_holes_closer_than_pull_push():
    """Thin holes (text, timestamps) take their nearest known pixels, as OpenCV's Navier-Stokes
    inpainting does, rather than pull-push's block averages from farther away."""
    frame = torch.from_numpy(load_clip("carphone_pristine.mp4", max_frames=1)[0]).permute(2, 0, 1)[None].float() / 255
    hole = torch.zeros(1, 1, *frame.shape[-2:])
    for top in range(20, 120, 12):
        hole[..., top:top + 3, 30:150] = 1  # lines of 3-px strokes
    filled = harmonic_fill(frame * (1 - hole), 1 - hole)
    assert torch.equal(filled * (1 - hole), frame * (1 - hole))
    inside = hole.bool().expand_as(frame)
    pull_push_error = (pull_push_fill(frame * (1 - hole), 1 - hole)[inside] - frame[inside]).abs().mean()
    assert (filled[inside] - frame[inside]).abs().mean() < 0.9 * pull_push_error  # 0.048 against 0.057


def test_network_share_keeps_thin_holes_smooth_over_flat_surroundings_only():
    """Thin strokes over a flat area take the smooth fill alone; over texture, and in the core of a
    wide hole anywhere, the network's fill; the known pixels are never read under the hole."""
    h, w = 64, 96
    flat = torch.full((1, 3, h, w), 0.4)
    textured = torch.from_numpy(np.random.default_rng(0).uniform(0.0, 1.0, (1, 3, h, w))).float()
    hole = torch.zeros(1, 1, h, w)
    hole[..., 10, 10:40] = 1        # a 1-px stroke
    hole[..., 20:22, 10:40] = 1     # a 2-px stroke
    hole[..., 28:31, 10:40] = 1     # a 3-px stroke: thick (its middle row has no known neighbour)
    hole[..., 35:55, 50:80] = 1     # a wide box
    for frame, thin in ((flat, 0.0), (textured, 1.0)):
        share = network_share(frame, hole)
        assert share.shape == hole.shape and 0 <= share.min() and share.max() <= 1
        assert share[..., 10, 10:40].sub(thin).abs().max() < 0.1, share[..., 10, 10:40]  # 0.94 textured
        assert share[..., 20:22, 10:40].sub(thin).abs().max() < 0.1
        assert torch.equal(share[..., 28:31, 11:39], torch.ones(1, 1, 3, 28))
        assert torch.equal(share[..., 36:54, 51:79], torch.ones(1, 1, 18, 28))  # core and its rim
    # Detail of DETAIL_KNEE (the mean grey step between known neighbours) gives the network half.
    ramp = (torch.arange(h).view(h, 1) + torch.arange(w)).float().mul(DETAIL_KNEE).expand(1, 3, h, w).contiguous()
    assert network_share(ramp, hole)[..., 10, 20].item() == pytest.approx(0.5, abs=0.05)
    scribbled = torch.where(hole.bool().expand_as(flat), torch.rand_like(flat), flat)
    assert torch.equal(network_share(scribbled, hole), network_share(flat, hole))


class _CopiesIntoTheCentre(torch.nn.Module):
    """Stands in for propagation: fills the centre's hole with 0.9 ("copied from other frames") and
    keeps the centre 5 of 7 frames, its mask cleared, as training/propagation.py's module does."""

    def forward(self, frames: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames, masks = frames[:, 1:6].clone(), masks[:, 1:6].clone()
        frames[:, 2] = torch.where(masks[:, 2] > 0, torch.full_like(frames[:, 2], 0.9), frames[:, 2])
        masks[:, 2] = 0
        return frames, masks


@torch.no_grad()
def test_propagated_thin_strokes_over_flat_surroundings_keep_the_smooth_fill():
    net = _net(NetConfig(masked=True, propagation_frames=7))
    net.propagation = _CopiesIntoTheCentre()
    masks = torch.zeros(1, 7, 1, 32, 48)
    masks[..., 16, 8:40] = 1  # a 1-px stroke of burnt-in text, in every frame
    flat = torch.full((1, 7, 3, 32, 48), 0.5)
    out = net(flat, masks)
    # Over a flat frame the stroke gets the smooth fill of its hole (0.5), not the copied 0.9.
    assert out[..., 16, 8:40].sub(0.5).abs().max() < 1e-4
    assert torch.equal(out * (1 - masks[:, 3]), flat[:, 3] * (1 - masks[:, 3]))
    # Over texture the copied pixels stay (the network's output on them, not the smooth fill).
    textured = torch.rand(1, 7, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    out = net(textured, masks)
    smooth = harmonic_fill(textured[:, 3] * (1 - masks[:, 3]), 1 - masks[:, 3])
    assert (out - smooth)[..., 16, 8:40].abs().mean() > 0.1


def test_dataset_yields_clean_window_target_and_masks():
    window, target, masks = WindowDataset("inpaint", frames=5, crop=48, still_prob=0.5, seed=1).sample(
        np.random.default_rng(0))
    assert window.shape == (5, 3, 48, 48) and target.shape == (3, 48, 48) and masks.shape == (5, 1, 48, 48)
    assert window.dtype == target.dtype == masks.dtype == torch.uint8
    assert torch.equal(window[2], target)  # the mask is the only degradation
    assert masks[2].any()


def test_validation_set_is_fixed_and_psnr_is_measured_inside_the_mask():
    a = validation_set("inpaint", count=2, crop=64)
    b = validation_set("inpaint", count=2, crop=64)
    assert np.array_equal(a.masks, b.masks) and a.masks.shape == (2, 5, 64, 64, 1)
    restored = a.targets.copy()
    centre = a.masks[:, 2]
    restored[np.broadcast_to(centre != 0, restored.shape)] = 0  # ruin only the hidden pixels
    outside = np.broadcast_to(centre == 0, restored.shape)
    assert np.array_equal(restored[outside], a.targets[outside])
    expected = masked_psnr(np.zeros_like(a.targets), a.targets, centre)
    assert masked_psnr(restored, a.targets, centre) == expected < 15


def test_distance_table_bins_every_hidden_pixel_once():
    """The --by-distance table of the inpaint benchmark: shares add up to all hidden pixels and
    each bin's PSNR is measured on that bin only (an error placed in one bin shows in it alone)."""
    val = validation_set("inpaint", count=2, crop=64)
    centre = val.masks[:, 2]
    distance = np.stack([cv2.distanceTransform((m[..., 0] != 0).astype(np.uint8), cv2.DIST_L2, 5) for m in centre])
    near = (centre[..., 0] != 0) & (distance <= 2)
    ruined = val.targets.copy()
    ruined[near] = 0  # wrong only within 2 px of the edge
    lines = distance_table([("exact", val.targets, ""), ("ruined near the edge", ruined, "")], val)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert rows[0][0] == "0-2" and sum(float(r[1].rstrip("%")) for r in rows) == pytest.approx(100, abs=0.2)
    assert float(rows[0][3]) < 15 and all(float(r[2]) > 100 for r in rows)
    assert all(float(r[3]) > 100 for r in rows[1:])
