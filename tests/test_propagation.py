"""Flow-guided propagation (training/propagation.py, torch, inside the inpainting network's graph)
on real photographs moved by a known camera motion: what another frame shows is copied in, what
no frame shows (or a scene cut) is left to the network, wrong flow is refused, and nothing
outside the mask changes."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from training.data import WindowDataset
from training.evaluate import network_planes
from training.network import NetConfig, VideoRestorationNet
from training.processing import pack_masks, window_to_network
from training.propagation import neighbour_order, propagate_centre, propagate_window, sample_frames

SIZE = 192


def panned(image: np.ndarray, frames: int, step: int, size: int = SIZE) -> np.ndarray:
    """(T, size, size, 3) crops of `image` with the camera moving `step` px right per frame."""
    return np.stack([image[40 : 40 + size, 20 + t * step : 20 + t * step + size] for t in range(frames)])


def static_box(frames: int, y: int, x: int, side: int, size: int = SIZE) -> np.ndarray:
    """A watermark-like box at the same place in every frame; uint8 (T, size, size, 1), 255 = fill."""
    masks = np.zeros((frames, size, size, 1), np.uint8)
    masks[:, y : y + side, x : x + side] = 255
    return masks


def as_network(frames: np.ndarray, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (T, H, W, C) planes -> float (1, T, C, H, W) in [0, 1], masks in {0, 1}."""
    return (window_to_network(torch.from_numpy(frames[None])),
            (window_to_network(torch.from_numpy(masks[None])) > 0.5).float())


def propagate(frames: np.ndarray, masks: np.ndarray, **checks) -> tuple[np.ndarray, np.ndarray]:
    """propagate_centre on uint8 planes -> (centre float (H, W, 3) in grey levels, mask bool (H, W))."""
    centre, mask = propagate_centre(*as_network(frames, masks), **checks)
    return centre[0].permute(1, 2, 0).numpy() * 255.0, mask[0, 0].numpy() > 0.5


def test_a_panning_camera_uncovers_what_a_static_mask_hides():
    frames = panned(skimage.data.astronaut(), 9, 4)
    masks = static_box(9, 80, 80, 24)
    centre, left = propagate(frames, masks)
    was = masks[4, ..., 0] != 0
    filled = was & ~left
    assert filled.sum() > 0.5 * was.sum(), f"only {filled.sum()} of {was.sum()} hidden pixels propagated"
    error = np.abs(centre[filled] - frames[4][filled]).mean()
    assert error < 4, f"propagated pixels are {error:.1f} grey levels off the truth"
    assert np.abs(centre[~was] - frames[4][~was]).max() < 1e-3, "a pixel outside the mask changed"
    assert not (left & ~was).any()


def test_the_checks_refuse_flow_that_does_not_hold():
    """The same pan, but each neighbour's content under the centre's hole is replaced by another
    picture: flow from the surroundings points there, only consistency and agreement can refuse."""
    frames = panned(skimage.data.astronaut(), 9, 4)
    masks = static_box(9, 80, 80, 24)
    masks[[0, 1, 2, 3, 5, 6, 7, 8]] = 0  # the neighbours show everything
    other = panned(skimage.data.coffee(), 9, 4)
    frames[[0, 1, 2, 3, 5, 6, 7, 8], 60:124, 60:124] = other[[0, 1, 2, 3, 5, 6, 7, 8], 60:124, 60:124]
    centre, left = propagate(frames, masks)
    was = masks[4, ..., 0] != 0
    filled = was & ~left
    assert filled.sum() < 0.05 * was.sum(), f"{filled.sum()} of {was.sum()} pixels copied from foreign content"
    # Without the checks the same flow would have copied (nearly) all of it.
    _, unchecked = propagate(frames, masks, max_flow_error=1e9, max_mismatch=1e9)
    assert (was & ~unchecked).sum() > 0.9 * was.sum()


def test_a_scene_cut_propagates_nothing():
    before = panned(skimage.data.astronaut(), 5, 2)
    after = panned(skimage.data.coffee(), 5, 2)
    frames = np.concatenate([after[:2], before[2:3], after[3:]])  # the centre belongs to another shot
    masks = static_box(5, 60, 60, 40)
    masks[:2] = masks[3:] = 0  # the other shot shows everything: only the checks can refuse it
    centre, left = propagate(frames, masks)
    assert np.array_equal(left, masks[2, ..., 0] != 0), "pixels were taken from a frame of another shot"


def test_pixels_hidden_in_every_frame_stay_hidden():
    frames = np.repeat(skimage.data.chelsea()[None, 100 : 100 + SIZE, 100 : 100 + SIZE], 5, axis=0)
    masks = static_box(5, 50, 50, 40)  # a static camera and a static mask: nothing to propagate
    # Under the mask each frame shows another object: copying any of it into the centre is wrong.
    hidden = masks[..., 0] != 0
    frames[hidden] = np.random.default_rng(0).integers(0, 256, (hidden.sum(), 3), dtype=np.uint8)
    centre, left = propagate(frames, masks)
    assert np.array_equal(left, hidden[2])
    assert np.abs(centre - frames[2]).max() < 1e-3, "pixels hidden in every frame were filled from another frame"


def test_one_frame_and_odd_sizes():
    frames = panned(skimage.data.astronaut(), 5, 3, size=SIZE)[:, :131, :97]
    masks = static_box(5, 40, 30, 20)[:, :131, :97]
    centre, mask = propagate_centre(*as_network(frames[:1], masks[:1]))
    assert torch.equal(centre, as_network(frames[:1], masks[:1])[0][:, 0]) and torch.equal(mask[0, 0] > 0, torch.from_numpy(masks[0, ..., 0] > 0))
    centre, left = propagate(frames, masks)
    assert centre.shape == (131, 97, 3) and left.shape == (131, 97)
    assert not (left & (masks[2, ..., 0] == 0)).any()


def test_nearest_frames_come_first():
    assert neighbour_order(5) == [1, 3, 0, 4]
    assert neighbour_order(21)[:4] == [9, 11, 8, 12] and len(neighbour_order(21)) == 20


def test_window_is_cut_to_the_network_frames_around_the_filled_centre():
    frames, masks = as_network(panned(skimage.data.astronaut(), 9, 4), static_box(9, 80, 80, 24))
    out_frames, out_masks = propagate_window(frames, masks, keep=5)
    assert out_frames.shape == (1, 5, 3, SIZE, SIZE) and out_masks.shape == (1, 5, 1, SIZE, SIZE)
    assert torch.equal(out_frames[:, [0, 1, 3, 4]], frames[:, [2, 3, 5, 6]])
    assert torch.equal(out_masks[:, [0, 1, 3, 4]], masks[:, [2, 3, 5, 6]])
    centre, mask = propagate_centre(frames, masks)
    assert torch.equal(out_frames[:, 2], centre) and torch.equal(out_masks[:, 2], mask)


def test_bad_shapes_are_named():
    frames = torch.zeros(1, 5, 3, 40, 40)
    with pytest.raises(ValueError, match=r"\(1, 5, 3, 40, 40\).*\(1, 5, 1, 40, 41\)"):
        propagate_centre(frames, torch.zeros(1, 5, 1, 40, 41))
    with pytest.raises(ValueError, match="keep"):
        propagate_window(frames, torch.zeros(1, 5, 1, 40, 40), keep=7)
    with pytest.raises(ValueError, match="propagation_frames"):
        NetConfig(frames=5, masked=True, propagation_frames=4)


def test_a_propagating_network_fills_its_centre_before_its_body():
    """A network configured with propagation_frames takes the long window and hands its body
    what propagate_window makes of it: the same as the same weights on the propagated frames."""
    torch.manual_seed(0)
    long = VideoRestorationNet(NetConfig(frames=5, masked=True, propagation_frames=9)).eval()
    short = VideoRestorationNet(NetConfig(frames=5, masked=True)).eval()
    short.load_state_dict(long.state_dict())
    frames, masks = as_network(panned(skimage.data.astronaut(), 9, 4), static_box(9, 80, 80, 24))
    with torch.no_grad():
        assert torch.allclose(long(frames, masks), short(*propagate_window(frames, masks, keep=5)))


def test_evaluation_and_training_hand_the_network_the_long_window():
    """training/evaluate.py and the training data give a propagating network all its frames
    (it propagates in its graph, as served), cut to `input_frames` from a longer window; evaluation
    sends the masks bit-packed, as served."""
    frames, masks = panned(skimage.data.astronaut(), 11, 4), static_box(11, 80, 80, 24)
    window, window_masks = network_planes(NetConfig(frames=5, masked=True, propagation_frames=9), frames[None], masks[None])
    assert np.array_equal(window[0], frames[1:10])
    assert np.array_equal(window_masks[0], pack_masks(masks[1:10]))  # bit-packed, as the window model sends them
    dataset = WindowDataset("inpaint", frames=9, crop=64, still_prob=1.0)
    window, target, masks = dataset.sample(np.random.default_rng(3))
    assert window.shape == (9, 3, 64, 64) and masks.shape == (9, 1, 64, 64)
    assert torch.equal(window[4], target), "the target is the long window's clean centre"


def test_deep_inside_a_wide_hole_only_a_still_flow_propagates():
    """Deep inside a wide static hole no pixel around is seen by both frames, so nothing checks the
    flow completed from around it against the scene: on a moving camera such pixels are left to
    the network (even where, as in this pure pan, the completed flow happens to be right), while
    behind a moving object on a still camera (flow 0) they are copied."""
    image = skimage.data.astronaut()
    side, y = 64, 64
    deep = (slice(y + 28, y + 36), slice(y + 28, y + 36))  # > 24 px from every edge of the hole
    _, left = propagate(panned(image, 21, 8), static_box(21, y, y, side))
    assert left[deep].all(), "pixels deep in a hole on a moving camera were propagated blindly"
    assert not left[y : y + side, y : y + side].all(), "nothing propagated, not even near the hole's edges"
    still = np.repeat(image[None, 40 : 40 + SIZE, 20 : 20 + SIZE], 21, axis=0)
    side, y = 88, 52
    deep = (slice(y + 40, y + 48), slice(y + 40, y + 48))
    moving = np.stack([static_box(1, y, 4 + 5 * t, side)[0] for t in range(21)])  # 5 px per frame
    centre, left = propagate(still, moving)
    copied = ~left[deep]
    assert copied.mean() > 0.8, "a still background behind a moving hole was not copied"
    assert np.abs(centre[deep][copied] - still[10][deep][copied]).mean() < 2


def test_sampling_the_window_repeats_its_border_as_gridsample_border_padding_does():
    """`sample_frames` clamps and pads with zeros (ONNX Runtime's fast path): the numbers of
    GridSample's border padding over the window read as one tall image, points on and off it."""
    gen = torch.Generator().manual_seed(0)
    n, t, c, h, w = 2, 5, 3, 23, 31
    frames = torch.rand(n, t, c, h, w, generator=gen)
    flow = torch.randn(n, 2, h, w, generator=gen) * 8
    index = torch.randint(0, t, (n, 1, h, w), generator=gen).float()
    rows = frames.reshape(n, 1, t * c * h, w)
    x = torch.arange(w).view(1, 1, w) + flow[:, 0]
    y = torch.arange(h).view(1, h, 1) + flow[:, 1] + index[:, 0] * (c * h)
    border = torch.cat([torch.nn.functional.grid_sample(
        rows, torch.stack([(2 * x + 1) / w - 1, (2 * (y + k * h) + 1) / (t * c * h) - 1], dim=-1),
        mode="bilinear", padding_mode="border", align_corners=False) for k in range(c)], dim=1)
    torch.testing.assert_close(sample_frames(frames, flow, index), border, rtol=0, atol=1e-5)
