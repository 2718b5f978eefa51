"""The realistic degradation primitives (H.264, the x4 downscalers, straight motion and Gaussian
kernels) and the blind mixtures built from them: strength ordering, shapes and the clean share."""
from __future__ import annotations

import numpy as np
import pytest

from training import degradations as d
from training.data import load_clip
from training.evaluate import psnr


@pytest.fixture(scope="module")
def window() -> np.ndarray:
    """Five real consecutive frames of a textured part of bikes (64x96)."""
    return np.ascontiguousarray(load_clip("bikes.mp4", max_frames=5)[:, 96:160, 256:352])


def test_h264_gets_worse_as_crf_rises_and_keeps_the_frames(window):
    scores = [psnr(d.h264_compress(window, crf), window) for crf in (18, 30, 42)]
    assert scores[0] > scores[1] + 2 > scores[2] + 4, scores
    assert d.h264_compress(window, 30).shape == window.shape


def test_h264_refuses_odd_sizes(window):
    with pytest.raises(ValueError, match="62x96"):
        d.h264_compress(window[:, :62], 30)


@pytest.mark.parametrize("kernel", list(d.DOWNSCALERS))
def test_every_downscaler_quarters_the_size_and_keeps_the_picture(kernel, window):
    small = d.downscale(window, 4, kernel)
    assert small.shape == (5, 16, 24, 3) and small.dtype == np.uint8
    # Each downscaler is a local average of the same picture: the bicubic one is a fair reference.
    assert psnr(small, d.bicubic_downscale(window, 4)) > 25


def test_downscalers_differ_in_sharpness(window):
    """Without antialiasing the small picture keeps (aliased) high frequencies: more detail energy."""
    def detail(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x.astype(np.float32), axis=2)).mean())
    assert detail(d.downscale(window, 4, "cubic")) > detail(d.downscale(window, 4, "area"))
    with pytest.raises(ValueError, match="lanczos"):
        d.downscale(window, 4, "lanczos")


@pytest.mark.parametrize("length,angle", [(5, 0), (9, 45), (21, 100)])
def test_linear_motion_kernel_is_a_normalised_streak_of_that_length(length, angle):
    k = d.linear_motion_kernel(length, angle)
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    ys, xs = np.nonzero(k > 0.02 * k.max())
    extent = np.hypot(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    assert length - 2 <= extent <= length + 2, (length, extent)


def test_gaussian_kernel_has_its_sigma():
    k = d.gaussian_kernel(2.0)
    r = k.shape[0] // 2
    xs = np.arange(-r, r + 1)
    assert np.sqrt((k.sum(axis=0) * xs**2).sum()) == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("task", ["denoise", "deblock", "deblur", "sr4"])
def test_mixtures_include_clean_and_light_cases(task, window):
    """Do no harm is learned only if untouched and lightly degraded windows are common."""
    rng = np.random.default_rng(0)
    outs = [d.degrade_window(task, window, rng) for _ in range(60)]
    reference = d.bicubic_downscale(window, 4) if task == "sr4" else window
    scores = [psnr(o, reference) for o in outs]
    if task in ("denoise", "deblock"):
        assert sum(s >= 99 for s in scores) >= 3, "no untouched window in 60 draws"
    assert sum(s > 38 for s in scores) >= 10, sorted(scores)
    # (compression alone is milder on this window than denoise's and deblur's strongest draws)
    assert min(scores) < (35 if task in ("sr4", "deblock") else 30), "no strong degradation in 60 draws"


def test_h264_is_deterministic(window):
    """The same seed must give the same training window (x264 is not bit-exact across threads)."""
    first = d.h264_compress(window, 30)
    assert all(np.array_equal(first, d.h264_compress(window, 30)) for _ in range(4))


def test_h264_preroll_is_the_window_mirrored_back_in_time():
    assert list(d.preroll_indices(5, 3)) == [3, 2, 1]  # played before frame 0, ending next to it
    assert list(d.preroll_indices(5, 10)) == [2, 1, 0, 1, 2, 3, 4, 3, 2, 1]  # ping-pong past the ends
    assert list(d.preroll_indices(1, 2)) == [0, 0]
    assert list(d.preroll_indices(5, 0)) == []


def test_h264_preroll_encodes_the_window_mid_stream(window):
    out = d.h264_compress(window, 30, preroll=6)
    assert out.shape == window.shape
    assert np.array_equal(out, d.h264_compress(window, 30, preroll=6))  # deterministic too
    # The same frames, coded as the last five of an 11-frame stream: other bits, the same quality range.
    assert not np.array_equal(out, d.h264_compress(window, 30))
    assert abs(psnr(out, window) - psnr(d.h264_compress(window, 30), window)) < 3
    with pytest.raises(ValueError, match="preroll"):
        d.h264_compress(window, 30, preroll=-1)


@pytest.mark.parametrize("task", ["denoise", "deblock"])
def test_h264_preroll_changes_only_the_h264_windows_of_a_mixture(task, window):
    same = changed = 0
    for seed in range(16):
        plain = d.degrade_window(task, window, np.random.default_rng(seed))
        assert np.array_equal(plain, d.degrade_window(task, window, np.random.default_rng(seed), h264_preroll=0))
        if np.array_equal(plain, d.degrade_window(task, window, np.random.default_rng(seed), h264_preroll=8)):
            same += 1  # clean, noisy or JPEG windows: the same draws as without pre-roll
        else:
            changed += 1
    assert same and changed, (same, changed)
