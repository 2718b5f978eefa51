"""Flow-guided propagation (training/propagation.py) on real photographs moved by a known camera
motion: what another frame shows is copied in, what no frame shows (or a scene cut) is left to
the network, and nothing outside the mask changes."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from training.data import WindowDataset
from training.evaluate import network_planes
from training.network import NetConfig
from training.propagation import flow_image, propagate_centre, propagate_window

SIZE = 96


def panned(image: np.ndarray, frames: int, step: int) -> np.ndarray:
    """(T, SIZE, SIZE, 3) crops of `image` with the camera moving `step` px right per frame."""
    x0 = 40
    return np.stack([image[60 : 60 + SIZE, x0 + t * step : x0 + t * step + SIZE] for t in range(frames)])


def static_box(frames: int, y: int, x: int, side: int) -> np.ndarray:
    """A watermark-like box at the same place in every frame; uint8 (T, SIZE, SIZE, 1), 255 = fill."""
    masks = np.zeros((frames, SIZE, SIZE, 1), np.uint8)
    masks[:, y : y + side, x : x + side] = 255
    return masks


def test_a_panning_camera_uncovers_what_a_static_mask_hides():
    frames = panned(skimage.data.astronaut(), 9, 4)
    masks = static_box(9, 36, 36, 14)
    centre, mask = propagate_centre(frames, masks)
    was, left = masks[4, ..., 0] != 0, mask[..., 0] != 0
    filled = was & ~left
    assert filled.sum() > 0.6 * was.sum(), f"only {filled.sum()} of {was.sum()} hidden pixels propagated"
    error = np.abs(centre[filled].astype(int) - frames[4][filled].astype(int)).mean()
    assert error < 4, f"propagated pixels are {error:.1f} grey levels off the truth"
    assert np.array_equal(centre[~was], frames[4][~was]), "a pixel outside the mask changed"
    assert set(np.unique(mask)) <= {0, 255} and not (left & ~was).any()


def test_a_scene_cut_propagates_nothing():
    before = panned(skimage.data.astronaut(), 5, 2)
    after = panned(skimage.data.coffee(), 5, 2)
    frames = np.concatenate([after[:2], before[2:3], after[3:]])  # the centre belongs to another shot
    masks = static_box(5, 30, 30, 20)
    masks[:2] = masks[3:] = 0  # the other shot shows everything: only the checks can refuse it
    centre, mask = propagate_centre(frames, masks)
    assert np.array_equal(mask, masks[2]), "pixels were taken from a frame of another shot"
    assert np.array_equal(centre, frames[2])


def test_pixels_hidden_in_every_frame_stay_hidden():
    frames = np.repeat(skimage.data.chelsea()[None, 100 : 100 + SIZE, 100 : 100 + SIZE], 5, axis=0)
    masks = static_box(5, 20, 20, 30)  # a static camera and a static mask: nothing to propagate
    # Under the mask each frame shows another object: copying any of it into the centre is wrong.
    hidden = masks[..., 0] != 0
    frames[hidden] = np.random.default_rng(0).integers(0, 256, (hidden.sum(), 3), dtype=np.uint8)
    centre, mask = propagate_centre(frames, masks)
    assert np.array_equal(mask, masks[2])
    assert np.array_equal(centre, frames[2]), "pixels hidden in every frame were filled from another frame"


def test_window_is_cut_to_the_network_frames_around_the_filled_centre():
    frames = panned(skimage.data.astronaut(), 9, 4)
    masks = static_box(9, 36, 36, 14)
    out_frames, out_masks = propagate_window(frames, masks, keep=5)
    assert out_frames.shape == (5, SIZE, SIZE, 3) and out_masks.shape == (5, SIZE, SIZE, 1)
    assert np.array_equal(out_frames[[0, 1, 3, 4]], frames[[2, 3, 5, 6]])
    assert np.array_equal(out_masks[[0, 1, 3, 4]], masks[[2, 3, 5, 6]])
    centre, mask = propagate_centre(frames, masks, np.stack([flow_image(f, m) for f, m in zip(frames, masks)]))
    assert np.array_equal(out_frames[2], centre) and np.array_equal(out_masks[2], mask)


def test_tiny_frames_and_single_frames_come_back_unchanged():
    frames = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    masks = static_box(5, 0, 0, 8)[:, :16, :16]
    centre, mask = propagate_centre(frames, masks)
    assert np.array_equal(centre, frames[2]) and np.array_equal(mask, masks[2])
    centre, mask = propagate_centre(frames[:1], masks[:1])
    assert np.array_equal(centre, frames[0]) and np.array_equal(mask, masks[0])


def test_bad_shapes_are_named():
    frames = np.zeros((5, 40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(5, 40, 40, 3\).*\(5, 40, 41, 1\)"):
        propagate_centre(frames, np.zeros((5, 40, 41, 1), np.uint8))
    with pytest.raises(ValueError, match="keep"):
        propagate_window(frames, np.zeros((5, 40, 40, 1), np.uint8), keep=7)
    with pytest.raises(ValueError, match=r"\(40, 40, 3\).*\(40, 39, 1\)"):
        flow_image(frames[0], np.zeros((40, 39, 1), np.uint8))


def test_evaluation_hands_a_masked_network_the_propagated_window():
    """training/evaluate.py gives the network what the window model sends it: a window longer than
    the network's T is propagated into its centre, then cut to T (the served test checks the rest)."""
    frames = panned(skimage.data.astronaut(), 9, 4)
    masks = static_box(9, 36, 36, 14)
    window, window_masks = network_planes(NetConfig(frames=5, masked=True), frames[None], masks[None])
    expected_frames, expected_masks = propagate_window(frames, masks, keep=5)
    assert np.array_equal(window[0], expected_frames) and np.array_equal(window_masks[0], expected_masks)


def test_training_windows_are_propagated_as_served():
    """--propagation: a sample draws the long window, propagates into its centre and keeps the
    network's T frames; the target is the long window's centre (what the kept centre shows where
    its mask is now clear: the real pixels, or pixels propagated close to them)."""
    dataset = WindowDataset("inpaint", frames=5, crop=64, still_prob=1.0, propagation=9)
    window, target, masks = dataset.sample(np.random.default_rng(3))
    assert window.shape == (5, 3, 64, 64) and masks.shape == (5, 1, 64, 64) and target.shape == (3, 64, 64)
    clear = (masks[2, 0] == 0).numpy()
    error = np.abs(window[2].numpy().astype(int) - target.numpy().astype(int)).transpose(1, 2, 0)[clear].mean()
    assert error < 2, f"the kept centre is {error:.1f} grey levels off the target where its mask is clear"
