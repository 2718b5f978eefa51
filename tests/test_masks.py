"""Inpainting mask generators (training/masks.py): contract values, determinism, sizes in pixels,
static and moving shapes."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from training.masks import KINDS, blobs, random_mask_window, text


@pytest.mark.parametrize("shape", [(96, 96), (144, 176), (272, 640)])
def test_window_follows_the_contract(shape):
    for seed in range(20):
        masks = random_mask_window(5, *shape, np.random.default_rng(seed))
        assert masks.shape == (5, *shape) and masks.dtype == np.uint8
        assert set(np.unique(masks)) <= {0, 255}
        coverage = np.count_nonzero(masks[2]) / masks[2].size
        assert 0 < coverage <= 0.5


def test_same_seed_same_masks_other_seed_other_masks():
    a = random_mask_window(5, 96, 96, np.random.default_rng(7))
    b = random_mask_window(5, 96, 96, np.random.default_rng(7))
    c = random_mask_window(5, 96, 96, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_hole_statistics_do_not_depend_on_frame_size(kind):
    """Sizes are in pixels: a 4x larger frame holds more holes, not larger ones, so its covered
    fraction stays about the same (within a factor of 2 over many draws)."""
    def mean_coverage(h: int, w: int) -> float:
        rng = np.random.default_rng(0)
        return float(np.mean([np.count_nonzero(KINDS[kind](5, h, w, rng)[2]) / (h * w) for _ in range(40)]))

    small, large = mean_coverage(96, 96), mean_coverage(192, 192)
    assert 0.5 < large / small < 2.0


def test_blobs_move_and_some_shapes_stay_static():
    rng = np.random.default_rng(0)
    moving = [blobs(5, 128, 128, rng) for _ in range(10)]
    assert all(not np.array_equal(m[0], m[4]) for m in moving if m[0].any() and m[4].any())
    windows = [random_mask_window(5, 96, 96, np.random.default_rng(s)) for s in range(40)]
    static = sum(np.array_equal(w[0], w[4]) for w in windows)
    assert 0 < static < len(windows)  # watermark-like static masks and moving ones both occur


def test_text_is_static_lettering_with_thin_strokes():
    """Burnt-in text never moves, and its strokes are thin (a hidden pixel lies a few px from a
    visible one), unlike the rectangles' and blobs' solid holes."""
    for seed in range(10):
        masks = text(5, 128, 128, np.random.default_rng(seed))
        assert all(np.array_equal(masks[0], m) for m in masks)
        hidden = masks[2] > 0
        assert hidden.any()
        depth = cv2.distanceTransform(hidden.astype(np.uint8), cv2.DIST_L2, 3)[hidden]
        assert np.median(depth) <= 4.0, seed
