"""Optical-flow alignment of a window (training/alignment.py), used by training, evaluation and
the serving window model: real frames moved by a known camera pan come back onto the centre."""
from __future__ import annotations

import numpy as np
import pytest

from training.alignment import HIDDEN, MIN_SIDE, align_window
from training.data import load_clip
from training.evaluate import psnr


def panned_window(shift: int = 6, size: tuple[int, int] = (96, 128)) -> tuple[np.ndarray, np.ndarray]:
    """Five crops of one real frame, the camera panning `shift` px right per frame, plus sigma-10
    noise; and the clean centre crop."""
    frame = load_clip("carphone_pristine.mp4", max_frames=1)[0]
    h, w = size
    y0, x0 = 20, 2 * shift + 4
    crops = np.stack([frame[y0 : y0 + h, x0 + k * shift : x0 + k * shift + w] for k in range(-2, 3)])
    noisy = np.clip(crops + np.random.default_rng(0).normal(0, 10, crops.shape), 0, 255).astype(np.uint8)
    return noisy, crops[2]


def test_neighbours_land_on_the_centre_frame():
    window, clean_centre = panned_window()
    aligned, masks = align_window(window)
    assert masks is None and aligned.shape == window.shape and aligned.dtype == np.uint8
    assert np.array_equal(aligned[2], window[2])
    inner = (slice(8, -8), slice(20, -20))  # away from the borders the pan uncovers
    for t in (0, 1, 3, 4):
        before = psnr(window[t][inner], clean_centre[inner])
        after = psnr(aligned[t][inner], clean_centre[inner])
        # Aligned neighbours are as close to the clean centre as the noise allows (sigma 10 ~ 28 dB).
        assert after > 26 and after > before + 5, f"frame {t}: {before:.1f} -> {after:.1f} dB"


def test_masks_follow_the_frames_and_uncovered_pixels_count_as_hidden():
    window, _ = panned_window()
    masks = np.zeros((*window.shape[:3], 1), np.uint8)
    masks[:, 40:60, 50:70] = HIDDEN
    aligned, warped = align_window(window, masks)
    assert warped.shape == masks.shape and set(np.unique(warped)) <= {0, HIDDEN}
    assert np.array_equal(warped[2], masks[2])
    # The camera pans right 6 px per frame: frame 0 has no pixels for the centre's right edge,
    # frame 4 none for its left edge; each keeps the other side.
    assert (warped[0, :, -8:] == HIDDEN).all() and (warped[4, :, :8] == HIDDEN).all()
    assert not (warped[0, 8:-8, :8] == HIDDEN).any() and not (warped[4, 8:-8, -8:] == HIDDEN).any()
    # A static box over moving content: aligned, frame 0's box lands 12 px left of the centre's.
    assert (warped[0, 45:55, 40:56] == HIDDEN).all() and not (warped[0, 45:55, 60:70] == HIDDEN).any()


def test_is_deterministic_and_leaves_tiny_or_single_frames_alone():
    window, _ = panned_window()
    first, _ = align_window(window)
    again, _ = align_window(window.copy())
    assert np.array_equal(first, again)
    tiny = window[:, : MIN_SIDE - 1, : MIN_SIDE - 1]
    assert align_window(tiny)[0] is tiny
    assert align_window(window[2:3])[0] is not None and np.array_equal(align_window(window[2:3])[0], window[2:3])


@pytest.mark.parametrize("frames, size", [(5, (41, 67)), (3, (57, 101))])
def test_odd_sizes_and_window_lengths(frames, size):
    window, clean_centre = panned_window(size=size)
    window = window[2 - frames // 2 : 3 + frames // 2]
    aligned, _ = align_window(window)
    centre = frames // 2
    assert aligned.shape == window.shape and np.array_equal(aligned[centre], window[centre])
    inner = (slice(6, -6), slice(14, -14))
    for t in set(range(frames)) - {centre}:
        before = psnr(window[t][inner], clean_centre[inner])
        after = psnr(aligned[t][inner], clean_centre[inner])
        assert after > before + 3, f"frame {t} of {frames}, {size}: {before:.1f} -> {after:.1f} dB"
