"""Blind estimation of a frame's blur kernel: what the deblur window model sends with each window
(BLUR_KERNEL), and what training and evaluation pass to the network beside the blurred window.

Kernel estimation is coarse-to-fine alternating minimisation after Cho & Lee ("Fast motion
deblurring", 2009): predict sharp edges from the current latent image (bilateral + shock filter),
keep the strongest useful gradients (Xu & Jia's usefulness, which discounts fine texture), solve
for the kernel in closed form in the Fourier domain, clean it (non-negative, small values and
stray components dropped, centred), then update the latent image by Tikhonov deconvolution.
It works on one fixed-size crop (REGION), so its cost does not grow with the frame.
"""
from __future__ import annotations

import cv2
import numpy as np
import scipy.fft

KERNEL_SIZE = 21      # the largest kernel estimated (odd; the training blur goes up to 21 px)
LEVELS = 4            # pyramid levels, sqrt(2) apart: kernels 21, 15, 11, 7 px
ITERATIONS = 5        # edge prediction / kernel / latent rounds per level
REGION = 320          # the kernel is estimated on at most REGION x REGION pixels (the most edgy part)
KERNEL_REGULARISER = 0.05   # Tikhonov weight of the kernel solve, relative to the mean edge energy
KERNEL_THRESHOLD = 0.2      # kernel values below this fraction of its peak are dropped
PAD = KERNEL_SIZE + 3       # reflected border before any FFT (against wrap-around)
MIN_SIDE = 48         # smaller frames hold too few edges to estimate from: a delta (no blur)


def _padded(image: np.ndarray, pad: int) -> np.ndarray:
    """Reflect-pad by `pad` on every side, then on the bottom/right up to fast FFT sizes."""
    h, w = image.shape[:2]
    fh, fw = (scipy.fft.next_fast_len(n + 2 * pad, real=True) for n in (h, w))
    return cv2.copyMakeBorder(image, pad, fh - h - pad, pad, fw - w - pad, cv2.BORDER_REFLECT)


def _otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of `kernel` zero-padded to `shape` with its centre moved to the origin."""
    kh, kw = kernel.shape
    full = np.zeros(shape, np.float32)
    full[:kh, :kw] = kernel
    return np.fft.rfft2(np.roll(full, (-(kh // 2), -(kw // 2)), (0, 1)))


def _psf(otf: np.ndarray, shape: tuple[int, int], size: int) -> np.ndarray:
    """The size x size kernel around the origin of the inverse of `otf`."""
    full = np.fft.irfft2(otf, s=shape)
    return np.roll(full, (size // 2, size // 2), (0, 1))[:size, :size].astype(np.float32)


def _gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.zeros_like(image), np.zeros_like(image)
    gx[:, :-1] = image[:, 1:] - image[:, :-1]
    gy[:-1] = image[1:] - image[:-1]
    return gx, gy


def _shock(image: np.ndarray, dt: float = 1.0) -> np.ndarray:
    """One step of Osher-Rudin shock filtering: edges become steps."""
    gy, gx = np.gradient(image)
    return image - dt * np.sign(cv2.Laplacian(image, cv2.CV_32F)) * np.hypot(gx, gy)


def _centred(kernel: np.ndarray) -> np.ndarray:
    """`kernel` normalised to sum 1 and shifted so that its centroid is the centre pixel; a
    delta where nothing is left."""
    total = kernel.sum()
    size = kernel.shape[0]
    if total <= 0:
        delta = np.zeros_like(kernel)
        delta[size // 2, size // 2] = 1.0
        return delta
    kernel = kernel / total
    ys, xs = np.indices(kernel.shape)
    shift = np.float32([[1, 0, size // 2 - (kernel * xs).sum()], [0, 1, size // 2 - (kernel * ys).sum()]])
    kernel = np.maximum(cv2.warpAffine(kernel, shift, (size, size), flags=cv2.INTER_LINEAR), 0)
    return kernel / max(float(kernel.sum()), 1e-8)


def _cleaned(kernel: np.ndarray) -> np.ndarray:
    """Non-negative, small values dropped, only components holding real mass kept, centred."""
    kernel = np.maximum(kernel, 0)
    kernel[kernel < KERNEL_THRESHOLD * kernel.max()] = 0
    count, labels = cv2.connectedComponents((kernel > 0).astype(np.uint8), connectivity=8)
    if count > 2:
        masses = np.array([kernel[labels == i].sum() for i in range(1, count)])
        keep = np.isin(labels, 1 + np.flatnonzero(masses > 0.1 * masses.max()))
        kernel = kernel * keep
    return _centred(kernel)


def _usefulness(image: np.ndarray) -> np.ndarray:
    """Xu & Jia's r map: near 1 on isolated strong edges, near 0 in fine texture and flat areas."""
    gx, gy = _gradients(image)
    box = np.ones((5, 5), np.float32)
    coherent = np.hypot(cv2.filter2D(gx, -1, box), cv2.filter2D(gy, -1, box))
    return coherent / (cv2.filter2D(np.hypot(gx, gy), -1, box) + 0.05)


def _edgiest_region(grey: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop (or the whole image, if smaller) with the most gradient energy."""
    h, w = grey.shape
    if h <= size and w <= size:
        return grey
    ch, cw = min(h, size), min(w, size)
    gx, gy = _gradients(grey)
    energy = cv2.integral(np.hypot(gx, gy))
    ys = np.linspace(0, h - ch, max(1, (h - ch) // (ch // 4) + 1)).astype(int)
    xs = np.linspace(0, w - cw, max(1, (w - cw) // (cw // 4) + 1)).astype(int)
    y, x = max(((y, x) for y in ys for x in xs),
               key=lambda p: energy[p[0] + ch, p[1] + cw] - energy[p[0], p[1] + cw] - energy[p[0] + ch, p[1]] + energy[p[0], p[1]])
    return grey[y : y + ch, x : x + cw]


def estimate_kernel(frame: np.ndarray) -> np.ndarray:
    """The blur kernel of one frame: float32 (KERNEL_SIZE, KERNEL_SIZE), sum 1, centred, in the
    convolution convention (blurred = sharp convolved with it).

    frame: uint8 (H, W, 3) RGB or (H, W) grey. Deterministic; about 0.2 s for 320 x 320 pixels
    (measured on this 2-core CPU with a training run beside it).
    """
    if min(frame.shape[:2]) < MIN_SIDE:
        return _centred(np.zeros((KERNEL_SIZE, KERNEL_SIZE), np.float32))
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    grey = _edgiest_region(grey.astype(np.float32) / 255.0, REGION)
    height, width = grey.shape
    kernel, latent, previous_pad, previous_hw = None, None, 0, (0, 0)
    for level in range(LEVELS - 1, -1, -1):
        scale = 2 ** (-level / 2)
        size = max(3, int(round(KERNEL_SIZE * scale)) | 1)
        h, w = max(16, int(round(height * scale))), max(16, int(round(width * scale)))
        blurred = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA) if level else grey
        padded = _padded(blurred, size)
        shape = padded.shape
        if kernel is None:
            kernel = np.zeros((size, size), np.float32)
            kernel[size // 2, size // 2] = 1.0
            latent = padded
        else:
            kernel = _centred(cv2.resize(kernel, (size, size), interpolation=cv2.INTER_LINEAR))
            inner = latent[previous_pad : previous_pad + previous_hw[0], previous_pad : previous_pad + previous_hw[1]]
            latent = _padded(cv2.resize(inner, (w, h), interpolation=cv2.INTER_LINEAR), size)
        previous_pad, previous_hw = size, (h, w)
        # Gradients near the (reflected, wrapped) border would teach the kernel the border.
        interior = np.zeros(shape, np.float32)
        interior[2 * size : size + h - size, 2 * size : size + w - size] = 1.0
        bx, by = _gradients(padded)
        blurred_x, blurred_y = np.fft.rfft2(bx * interior), np.fft.rfft2(by * interior)
        useful = _usefulness(padded) * interior
        spectrum = np.fft.rfft2(padded)
        d2 = np.abs(_otf(np.float32([[0, -1, 1]]), shape)) ** 2 + np.abs(_otf(np.float32([[0], [-1], [1]]), shape)) ** 2
        keep_fraction = 0.03
        for it in range(ITERATIONS):
            predicted = _shock(cv2.bilateralFilter(latent, 5, 0.1, 1.0))
            px, py = _gradients(predicted)
            strength = np.hypot(px, py) * useful
            inside = strength[interior > 0]
            threshold = np.partition(inside, int((1 - keep_fraction) * (inside.size - 1)))[int((1 - keep_fraction) * (inside.size - 1))]
            keep = (strength >= threshold).astype(np.float32)
            sharp_x, sharp_y = np.fft.rfft2(px * keep), np.fft.rfft2(py * keep)
            energy = np.abs(sharp_x) ** 2 + np.abs(sharp_y) ** 2
            otf = (np.conj(sharp_x) * blurred_x + np.conj(sharp_y) * blurred_y) / (energy + KERNEL_REGULARISER * energy.mean())
            kernel = _cleaned(_psf(otf, shape, size))
            k = _otf(kernel, shape)
            weight = max(0.02 * 0.7**it, 0.002)  # the latent's gradient prior relaxes as the kernel settles
            latent = np.fft.irfft2(np.conj(k) * spectrum / (np.abs(k) ** 2 + weight * d2), s=shape).astype(np.float32)
            keep_fraction = min(keep_fraction * 1.15, 0.1)
    return kernel
