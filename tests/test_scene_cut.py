"""Windows across a scene cut (training/scene_cut.py): which frames count as another scene, what
replaces them, and that a network restores such a window as it restores the mirrored one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.robust_grid import clip_source
from training.network import NetConfig, VideoRestorationNet
from training.scene_cut import other_scene, same_scene


def as_float(window: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (1, T, 3, H, W) in [0, 1]."""
    return torch.from_numpy(window).permute(0, 3, 1, 2).float()[None] / 255


@pytest.fixture(scope="module")
def two_clips() -> tuple[np.ndarray, np.ndarray]:
    a = clip_source("bigbuckbunny.mp4", 5, 1, 0, centres=[60]).windows[0][:, :144, :176]
    b = clip_source("carphone_pristine.mp4", 5, 1, 0, centres=[60]).windows[0][:, :144, :176]
    return a, b


def test_a_splice_is_another_scene_and_motion_is_not(two_clips):
    a, b = two_clips
    assert not other_scene(as_float(a)).any()  # a real clip's five frames: one scene
    for k in range(1, 5):
        spliced = np.concatenate([a[:k], b[k:]])
        expected = [i < k for i in range(5)] if k <= 2 else [i >= k for i in range(5)]
        assert other_scene(as_float(spliced))[0].tolist() == expected, k
    # a fast pan (8 px per frame) of one image is still one scene
    still = np.concatenate([a[2], a[2]], axis=1)
    panned = np.stack([still[:, 16 + 8 * i : 16 + 8 * i + 176] for i in range(5)])
    assert not other_scene(as_float(panned)).any()


def test_frames_downscaled_4x_need_stride_1_to_see_the_cut(two_clips):
    a, b = two_clips
    spliced = as_float(np.concatenate([a[:2], b[2:]]))
    small = torch.nn.functional.avg_pool2d(spliced.flatten(0, 1), 4).unflatten(0, (1, 5))
    assert other_scene(small, stride=1).tolist() == other_scene(spliced).tolist() == [[True, True, False, False, False]]


def test_other_scene_frames_become_their_mirror_or_the_centre():
    frames = torch.arange(5, dtype=torch.float32).view(1, 5, 1, 1, 1).expand(2, 5, 3, 64, 64) / 100  # 2.5 grey levels apart
    scene = torch.tensor([[0.9, 0.9, 0.0, 0.0, 0.0], [0.9, 0.0, 0.0, 0.0, 0.9]]).view(2, 5, 1, 1, 1)
    window = frames + scene  # window 0: frames 0-1 of another scene; window 1: frames 0 and 4
    fixed = same_scene(window)
    picked = (fixed[:, :, 0, 0, 0] - scene[:, 2, 0, 0, 0].view(2, 1)) * 100
    assert picked.round().tolist() == [[4, 3, 2, 3, 4], [2, 1, 2, 3, 2]]


def test_networks_restore_a_window_across_a_cut_as_its_mirror(two_clips):
    a, b = two_clips
    torch.manual_seed(0)
    small = dict(channels=8, frame_channels=4, fusion_blocks=1)
    spliced = as_float(np.concatenate([a[:2], b[2:]]))
    low = torch.nn.functional.avg_pool2d(spliced.flatten(0, 1), 4).unflatten(0, (1, 5))  # sr4's input
    for config, window in ((NetConfig(**small, aligned=True), spliced), (NetConfig(**small), spliced),
                           (NetConfig(**small, scale=4, unshuffle=1), low)):
        net = VideoRestorationNet(config).eval()
        with torch.no_grad():
            assert torch.equal(net(window), net(window[:, [4, 3, 2, 3, 4]])), config
            assert not torch.equal(net(window), net(window[:, [2, 2, 2, 2, 2]])), config  # same-scene frames kept


def test_a_masked_network_sees_no_hidden_pixel_of_a_window_across_a_cut(two_clips):
    a, b = two_clips
    torch.manual_seed(0)
    net = VideoRestorationNet(NetConfig(channels=8, frame_channels=4, fusion_blocks=1, masked=True)).eval()
    with torch.no_grad():
        for p in net.parameters():  # an untrained network's last layer starts at zero: it would return its input
            p.normal_(0, 0.1)
    spliced = as_float(np.concatenate([a[:1], b[1:]]))  # frame 0 of another scene
    masks = torch.zeros(1, 5, 1, 144, 176)
    masks[:, 2:, :, 40:80, 40:120] = 1  # a hole in the centre frame, to be filled, and in frames 3-4
    other = spliced.clone()
    other[:, 4, :, 40:80, 40:120] = 0.5  # only pixels its mask hides differ
    with torch.no_grad():
        assert torch.equal(net(spliced, masks), net(other, masks))
