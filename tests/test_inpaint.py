"""The inpaint task in training: the masked network's guarantees on real video, its data and its
validation set."""
from __future__ import annotations

import numpy as np
import torch

from training.data import WindowDataset, load_clip
from training.evaluate import masked_psnr, validation_set
from training.masks import random_mask_window
from training.network import NetConfig, VideoRestorationNet
from training.processing import ServingNet


def _net() -> VideoRestorationNet:
    torch.manual_seed(0)
    net = VideoRestorationNet(NetConfig(masked=True)).eval()
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
    out = serving(window, masks)
    keep = masks[:, 2, ..., 0] == 0
    assert torch.equal(out[keep], window[:, 2][keep])
    # Whatever is under the masks (the object to remove) must not leak into the result.
    scribbled = torch.where(masks > 0, torch.randint_like(window, 0, 256), window)
    assert torch.equal(serving(scribbled, masks), out)


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
