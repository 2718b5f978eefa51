"""The in-graph Wiener deconvolution (training/deconvolution.py) that the deblur network runs on its
window with the kernel the window model sends: checked against NumPy's FFT, on real photographs and
per window of a batch. Exported with the deblur network, it is run by ONNX Runtime at odd sizes and
batch 3 in tests/test_export_onnx.py."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from training.contract import KERNEL_SIZE
from training.deconvolution import NSR, PAD, RADIX, WienerDeconvolution, dft, kernel_spectrum, split_frequencies
from training.degradations import blur, convolution_kernel, motion_blur_kernel
from training.evaluate import psnr
from training.network import NetConfig, VideoRestorationNet
from training.processing import ServingNet


def numpy_wiener(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The same Wiener filter with NumPy's FFT in float64: the oracle."""
    h, w = plane.shape
    ph, pw = (-(h + 2 * PAD)) % RADIX, (-(w + 2 * PAD)) % RADIX
    padded = np.pad(plane.astype(np.float64), ((PAD, PAD + ph), (PAD, PAD + pw)), mode="edge")
    full = np.zeros(padded.shape)
    k = kernel.shape[0]
    full[:k, :k] = kernel
    otf = np.fft.fft2(np.roll(full, (-(k // 2), -(k // 2)), (0, 1)))
    out = np.fft.ifft2(np.fft.fft2(padded) * np.conj(otf) / (np.abs(otf) ** 2 + NSR)).real
    return np.clip(out[PAD : PAD + h, PAD : PAD + w], 0, 1)


def frames_of(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("length", [RADIX * 2, RADIX * 5])
@pytest.mark.parametrize("dim", [-1, -2])
def test_the_matrix_dft_is_numpys_fft_in_split_order(length, dim):
    rng = np.random.default_rng(length)
    x = rng.normal(size=(2, length, 3)) + 1j * rng.normal(size=(2, length, 3))
    x = np.ascontiguousarray(x if dim == -2 else x.transpose(0, 2, 1))
    xr, xi = (torch.tensor(part, dtype=torch.float32) for part in (x.real, x.imag))
    yr, yi = dft(xr, xi, dim)
    order = split_frequencies(length, torch.float64).long().numpy()
    np.testing.assert_allclose((yr + 1j * yi).numpy(), np.take(np.fft.fft(x, axis=dim), order, axis=dim),
                               atol=2e-4 * length)
    back = dft(yr, yi, dim, inverse=True)
    np.testing.assert_allclose((back[0] + 1j * back[1]).numpy(), x, atol=1e-4)


def test_the_kernel_spectrum_is_the_fft_of_the_centred_kernel():
    kernel = np.random.default_rng(0).random((2, 5, 5)).astype(np.float32)
    h, w = 2 * RADIX, 3 * RADIX
    kr, ki = kernel_spectrum(torch.from_numpy(kernel), h, w)
    full = np.zeros((2, h, w))
    full[:, :5, :5] = kernel
    want = np.fft.fft2(np.roll(full, (-2, -2), (1, 2)))
    rows, cols = (split_frequencies(n, torch.float64).long().numpy() for n in (h, w))
    want = want[:, rows][:, :, cols]
    np.testing.assert_allclose((kr + 1j * ki).numpy(), want, atol=1e-4)


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (50, 77)])
def test_deconvolution_matches_numpys_fft_at_any_size(size):
    rng = np.random.default_rng(1)
    planes = rng.random((1, 3, *size)).astype(np.float32)
    kernel = convolution_kernel(motion_blur_kernel(9, rng), KERNEL_SIZE)
    got = WienerDeconvolution()(torch.from_numpy(planes), torch.from_numpy(kernel)[None]).numpy()
    want = np.stack([numpy_wiener(p, kernel) for p in planes[0]])
    assert got.shape == planes.shape
    np.testing.assert_allclose(got[0], want, atol=2e-4)


def test_the_true_kernel_undoes_a_motion_blur_on_a_photograph():
    sharp = skimage.data.chelsea()[:200, :240]
    kernel = motion_blur_kernel(15, np.random.default_rng(1))
    blurred = blur(sharp[None], kernel)[0]
    out = WienerDeconvolution()(frames_of(blurred), torch.from_numpy(convolution_kernel(kernel, KERNEL_SIZE))[None])
    restored = (out[0].permute(1, 2, 0) * 255).round().byte().numpy()
    # Measured 2026-12-05: 23.9 -> 33.5 dB.
    assert psnr(restored, sharp) > psnr(blurred, sharp) + 6


def test_each_window_of_a_batch_gets_its_own_kernel():
    rng = np.random.default_rng(2)
    planes = torch.from_numpy(rng.random((3, 4, 40, 56)).astype(np.float32))
    kernels = torch.from_numpy(np.stack([convolution_kernel(motion_blur_kernel(s, rng), KERNEL_SIZE) for s in (5, 11, 17)]))
    together = WienerDeconvolution()(planes, kernels)
    for i in range(3):
        torch.testing.assert_close(together[i : i + 1], WienerDeconvolution()(planes[i : i + 1], kernels[i : i + 1]),
                                   atol=1e-5, rtol=0)
    # A delta kernel leaves the planes as they were, up to the Wiener shrinkage 1 / (1 + NSR).
    delta = F.pad(torch.ones(3, 1, 1), (KERNEL_SIZE // 2,) * 4)
    torch.testing.assert_close(WienerDeconvolution()(planes, delta), planes / (1 + NSR), atol=1e-4, rtol=0)


def test_a_window_whose_kernel_is_a_delta_comes_back_unchanged():
    """Do no harm: the kernel estimate's "no blur" (a delta) passes the centre frame through the
    deblur network bit-exact at its uint8 edges; a window with a real kernel is restored."""
    torch.manual_seed(0)
    net = VideoRestorationNet(NetConfig(channels=8, frame_channels=4, fusion_blocks=1, level_blocks=1,
                                        deconvolved=True)).eval()
    window = torch.randint(0, 256, (2, 5, 30, 42, 3), dtype=torch.uint8)
    kernels = torch.zeros(2, KERNEL_SIZE, KERNEL_SIZE)
    kernels[0, KERNEL_SIZE // 2, KERNEL_SIZE // 2] = 1.0
    kernels[1, KERNEL_SIZE // 2 - 1 : KERNEL_SIZE // 2 + 2, KERNEL_SIZE // 2 - 1 : KERNEL_SIZE // 2 + 2] = 1 / 9
    with torch.no_grad():
        out = ServingNet(net)(window, kernels)
    assert torch.equal(out[0], window[0, 2])
    assert (out[1].int() - window[1, 2].int()).abs().max() > 1
