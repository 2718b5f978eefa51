"""Blind blur-kernel estimation in NumPy alone (training/blur_kernel.py), which the window model
may run: it finds known kernels, keeps its contract, and imports neither OpenCV nor SciPy."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from training import contract
from training.blur_kernel import KERNEL_SIZE, MIN_SIDE, PeriodicKernel, estimate_kernel
from training.degradations import blur, convolution_kernel, gaussian_kernel, gaussian_noise, motion_blur_kernel

CENTRE = KERNEL_SIZE // 2


def assert_is_a_kernel(kernel: np.ndarray) -> None:
    assert kernel.shape == (KERNEL_SIZE, KERNEL_SIZE) and kernel.dtype == np.float32
    assert kernel.min() >= 0 and kernel.sum() == pytest.approx(1.0, abs=1e-4)
    ys, xs = np.indices(kernel.shape)
    assert abs((kernel * ys).sum() - CENTRE) < 0.3 and abs((kernel * xs).sum() - CENTRE) < 0.3


def blurred_photo(image: str, kernel: np.ndarray) -> np.ndarray:
    sharp = getattr(skimage.data, image)()[:256, :320]
    return gaussian_noise(blur(sharp[None], kernel), 1.0, np.random.default_rng(0))[0]


@pytest.mark.parametrize(
    "image, kernel, tolerance",
    [
        # Measured 2026-12-05: L1 0.52 (motion), 0.27 (Gaussian); OpenCV's estimator 0.46 and 0.36.
        ("astronaut", motion_blur_kernel(13, np.random.default_rng(4)), 0.7),
        ("coffee", gaussian_kernel(1.5), 0.45),
    ],
    ids=["motion", "gaussian"],
)
def test_a_known_kernel_is_recovered(image, kernel, tolerance):
    estimate = estimate_kernel(blurred_photo(image, kernel))
    assert_is_a_kernel(estimate)
    assert np.abs(estimate - convolution_kernel(kernel, KERNEL_SIZE)).sum() < tolerance  # of a possible 2
    # ... and far better than saying "no blur":
    delta = convolution_kernel(np.ones((1, 1), np.float32), KERNEL_SIZE)
    assert np.abs(delta - convolution_kernel(kernel, KERNEL_SIZE)).sum() > 1.5


def test_the_estimate_is_deterministic_and_grey_frames_work():
    frame = blurred_photo("astronaut", gaussian_kernel(2.0))
    np.testing.assert_array_equal(estimate_kernel(frame), estimate_kernel(frame.copy()))
    grey = np.ascontiguousarray(frame[..., 1])
    assert_is_a_kernel(estimate_kernel(grey))


@pytest.mark.parametrize("image", ["astronaut", "coffee"])
def test_a_sharp_frame_gives_a_delta(image):
    # Its edges are a pixel wide, which the estimate reads as a blur below SHARP_SPREAD: none.
    kernel = estimate_kernel(getattr(skimage.data, image)()[:256, :320])
    assert_is_a_kernel(kernel)
    assert kernel[CENTRE, CENTRE] == 1.0


@pytest.mark.parametrize(
    "frame",
    [
        np.random.default_rng(0).integers(0, 256, (MIN_SIDE - 1, 400, 3), dtype=np.uint8),
        np.full((120, 160, 3), 128, np.uint8),
    ],
    ids=["tiny", "flat"],
)
def test_tiny_and_flat_frames_give_a_delta(frame):
    kernel = estimate_kernel(frame)
    assert kernel.shape == (KERNEL_SIZE, KERNEL_SIZE) and kernel[CENTRE, CENTRE] == 1.0 and kernel.sum() == 1.0


@pytest.mark.parametrize(
    "frame, named",
    [
        (np.zeros((64, 64, 4), np.uint8), r"uint8 shape \(64, 64, 4\)"),
        (np.zeros((5, 64, 64, 3), np.uint8), r"uint8 shape \(5, 64, 64, 3\)"),
        (np.zeros((64, 64, 3), np.float32), r"float32 shape \(64, 64, 3\)"),
    ],
)
def test_bad_frames_are_named(frame, named):
    with pytest.raises(ValueError, match=r"estimate_kernel: expected .*" + named):
        estimate_kernel(frame)


def test_a_periodic_kernel_is_estimated_every_k_frames():
    sharp, blurred = skimage.data.astronaut()[:256, :320], blurred_photo("astronaut", gaussian_kernel(2.0))
    periodic = PeriodicKernel(every=2)
    first = periodic(blurred)
    np.testing.assert_array_equal(periodic(sharp), first)  # reused, not re-estimated
    np.testing.assert_array_equal(periodic(sharp), estimate_kernel(sharp))  # the 3rd frame estimates anew
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        PeriodicKernel(every=0)


def test_the_kernel_size_is_the_contracts():
    # blur_kernel.py travels alone beside the window model, so it keeps its own copy.
    assert KERNEL_SIZE == contract.KERNEL_SIZE


def test_the_module_imports_neither_opencv_nor_scipy():
    """The window model imports the file on its own (copied beside model.py), with NumPy only."""
    folder = Path(__file__).resolve().parents[1] / "training"
    code = (
        f"import sys; sys.path.insert(0, {str(folder)!r})\n"
        "import numpy, blur_kernel\n"
        "blur_kernel.estimate_kernel(numpy.zeros((64, 64, 3), numpy.uint8))\n"
        "print(sorted(m for m in ('cv2', 'scipy', 'torch', 'skimage') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
