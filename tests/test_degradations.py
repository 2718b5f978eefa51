"""Degradations: deterministic given a seed, the right strength, the documented shapes."""
from __future__ import annotations

import numpy as np
import pytest

from training import degradations as d
from training.data import load_clip


@pytest.fixture(scope="module")
def window() -> np.ndarray:
    """Five real consecutive frames (carphone, 144x176), cropped to 64x96."""
    return np.ascontiguousarray(load_clip("carphone_pristine.mp4", max_frames=5)[:, 40:104, 40:136])


def grey(value: int, shape=(3, 64, 64, 3)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


@pytest.mark.parametrize("task", ["denoise", "deblock", "deblur", "sr4"])
def test_degrade_window_is_deterministic_given_seed(task, window):
    a = d.degrade_window(task, window, np.random.default_rng(3))
    b = d.degrade_window(task, window, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8
    if task != "sr4":  # the bicubic downscale has no randomness
        # other seeds draw other degradations (a seed may draw none: deblock's 3 and 4 both do)
        assert any(not np.array_equal(a, d.degrade_window(task, window, np.random.default_rng(s))) for s in (4, 5))


def test_degrade_window_shapes(window):
    assert d.degrade_window("denoise", window, np.random.default_rng(0)).shape == window.shape
    assert d.degrade_window("deblock", window, np.random.default_rng(0)).shape == window.shape
    assert d.degrade_window("deblur", window, np.random.default_rng(0)).shape == window.shape
    assert d.degrade_window("sr4", window, np.random.default_rng(0)).shape == (5, 16, 24, 3)
    with pytest.raises(ValueError, match="inpaint"):
        d.degrade_window("inpaint", window, np.random.default_rng(0))


def test_denoise_compressed_prob_draws_compression_without_noise():
    flat = grey(128, (5, 32, 32, 3))
    changed = [np.abs(d.degrade_window("denoise", flat, np.random.default_rng(s)).astype(int) - 128).max() for s in range(24)]
    compressed = [np.abs(d.degrade_window("denoise", flat, np.random.default_rng(s), compressed_prob=1.0).astype(int) - 128).max()
                  for s in range(24)]
    assert max(compressed) <= 2, compressed  # JPEG and H.264 keep a flat frame flat: no noise drawn
    assert sum(c > 2 for c in changed) >= 8, changed  # the mixture alone adds noise to about two windows in three


def test_denoise_noisy_compressed_prob_sets_how_often_the_mixture_compresses(window):
    def compressed(seed: int, p: float) -> bool:  # the draws before compression are the same: equal noise, then the codec or not
        plain = d.degrade_window("denoise", window, np.random.default_rng(seed), noisy_compressed_prob=0.0)
        return not np.array_equal(d.degrade_window("denoise", window, np.random.default_rng(seed), noisy_compressed_prob=p), plain)
    default = [d.degrade_window("denoise", window, np.random.default_rng(s)) for s in range(12)]
    assert all(np.array_equal(a, d.degrade_window("denoise", window, np.random.default_rng(s), noisy_compressed_prob=0.6))
               for s, a in enumerate(default))  # the flag's default is the mixture's 0.6
    assert sum(compressed(s, 1.0) for s in range(20)) >= 14  # all but the 15% left clean (and noise-free ones the codec keeps)
    assert 0 < sum(compressed(s, 0.3) for s in range(40)) < sum(compressed(s, 0.9) for s in range(40))


def test_deblock_adds_only_light_noise_under_its_compression():
    flat = grey(128, (5, 32, 32, 3))
    spread = [d.degrade_window("deblock", flat, np.random.default_rng(s)).astype(float).std() for s in range(40)]
    assert max(spread) <= d.DEBLOCK_SIGMA_MAX * 1.1, spread  # never denoise's heavy noise
    # light noise is drawn (three windows in ten), though the encoder smooths most of it on a flat frame
    assert sum(s > 0.2 for s in spread) >= 4, spread


def test_sr4_downscaler_probs_choose_the_scaler(window):
    plain = {k: d.downscale(window, 4, k).astype(float) for k in ("cubic", "area")}
    for seed in range(6):  # then noise and compression, drawn alike for both
        for kernel, probs in (("cubic", (0, 0, 0, 1, 0)), ("area", (0, 1, 0, 0, 0))):
            out = d.degrade_window("sr4", window, np.random.default_rng(seed), downscaler_probs=probs).astype(float)
            error = {k: np.abs(out - v).mean() for k, v in plain.items()}
            assert error[kernel] == min(error.values()), (seed, kernel, error)


@pytest.mark.parametrize("sigma", [5.0, 25.0, 50.0])
def test_gaussian_noise_has_its_sigma(sigma):
    noisy = d.gaussian_noise(grey(128), sigma, np.random.default_rng(0)).astype(float)
    assert noisy.std() == pytest.approx(sigma, rel=0.05)
    assert noisy.mean() == pytest.approx(128, abs=0.5)


def test_poisson_gaussian_noise_grows_with_brightness():
    rng = np.random.default_rng(0)
    dark = d.poisson_gaussian_noise(grey(30), 25.0, shot_fraction=1.0, rng=rng).astype(float)
    mid = d.poisson_gaussian_noise(grey(128), 25.0, shot_fraction=1.0, rng=rng).astype(float)
    assert mid.std() == pytest.approx(25.0 * np.sqrt(128 / 127.5), rel=0.05)
    assert dark.std() == pytest.approx(25.0 * np.sqrt(30 / 127.5), rel=0.05)
    # With no shot part it is plain Gaussian noise, the same at every brightness.
    for value in (50, 200):  # 5 sigma from the clipping ends
        flat = d.poisson_gaussian_noise(grey(value), 10.0, shot_fraction=0.0, rng=rng).astype(float)
        assert flat.std() == pytest.approx(10.0, rel=0.05)


def test_jpeg_lower_quality_loses_more(window):
    def err(q):
        return np.abs(d.jpeg_compress(window, q).astype(float) - window).mean()

    assert 0 < err(95) < err(50) < err(10)


def test_blur_kernels_are_normalised_and_blur():
    rng = np.random.default_rng(1)
    for size in (7, 15, 21):
        k = d.motion_blur_kernel(size, rng)
        assert k.shape == (size, size) and k.min() >= 0 and k.sum() == pytest.approx(1.0, abs=1e-5)
        assert (k > 0).sum() >= 3  # a trajectory, not a single dot
    disk = d.defocus_kernel(3.0)
    assert disk.shape == (7, 7) and disk.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(disk, disk.T, atol=1e-6)
    np.testing.assert_allclose(disk, disk[::-1], atol=1e-6)


def test_blur_removes_detail(window):
    def detail(x):
        return np.abs(np.diff(x.astype(float), axis=2)).mean()

    assert detail(d.blur(window, d.defocus_kernel(3.0))) < 0.6 * detail(window)


def test_bicubic_downscale_preserves_flat_and_checks_size():
    np.testing.assert_array_equal(d.bicubic_downscale(grey(77, (2, 32, 48, 3))), grey(77, (2, 8, 12, 3)))
    with pytest.raises(ValueError, match="30x48"):
        d.bicubic_downscale(grey(0, (1, 30, 48, 3)))
