"""Blind blur-kernel estimation from one frame in NumPy alone (no OpenCV, SciPy or torch), cheap
enough for the window model: the kernel is a small, resolution-independent estimate made on one
crop, and the deconvolution that uses it runs inside the exported graph.

Kernel estimation is coarse-to-fine alternating minimisation after Cho & Lee ("Fast motion
deblurring", 2009): predict sharp edges from the current latent image (a light smoothing + shock
filter), keep the strongest useful gradients (Xu & Jia's usefulness, which discounts fine
texture), solve for the kernel in closed form in the Fourier domain, clean it (non-negative, small
values and stray components dropped, centred), then update the latent image by Tikhonov
deconvolution. A kernel no wider than a sharp frame's own edges is reported as no blur.

It runs on the REGION x REGION crop with the most edge energy, chosen on a strided thumbnail, so
the cost hardly grows with the frame: about 70 ms of CPU per 1080p frame on the shared 2-core
machine (the OpenCV + SciPy estimator it replaces: 120 ms), with as good kernels on the deblur
task's blur families and far better ones on sharp frames (benchmarks/blur_kernel.py; numbers in
benchmarks/RESULTS.md). That is still several frames' window-model budget, so the window model
estimates on every EVERY-th frame of a stream and reuses the kernel in between (PeriodicKernel):
about 9 ms per frame at EVERY = 8.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

KERNEL_SIZE = 21      # the largest kernel estimated (odd; the training blur goes up to 21 px)
# Edge prediction / kernel / latent rounds per pyramid level, coarse to fine; levels are sqrt(2)
# apart (kernels 7, 11, 15, 21 px). Coarse levels cost little, the finest most.
ITERATIONS = (5, 5, 5, 5)
REGION = 256          # the kernel is estimated on at most REGION x REGION pixels (the most edgy part)
KERNEL_REGULARISER = 0.05   # Tikhonov weight of the kernel solve, relative to the mean edge energy
KERNEL_THRESHOLD = 0.2      # kernel values below this fraction of its peak are dropped
SHARP_SPREAD = 1.2    # px: kernels with a smaller RMS radius are reported as no blur (a delta)
MIN_SIDE = 48         # smaller frames hold too few edges to estimate from: their kernel is a delta
EVERY = 8             # PeriodicKernel: frames per estimate (one estimate costs several frames' budget)
GREY = np.float32([0.299, 0.587, 0.114]) / 255.0  # BT.601 luma, as OpenCV's RGB2GRAY


def _delta(size: int = KERNEL_SIZE) -> np.ndarray:
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, size // 2] = 1.0
    return kernel


def _grey(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB or (H, W) grey -> float32 luma in 0..1."""
    if frame.ndim == 2:
        return frame.astype(np.float32) / 255.0
    return frame[..., 0] * GREY[0] + frame[..., 1] * GREY[1] + frame[..., 2] * GREY[2]


def _fast_len(n: int) -> int:
    """The smallest 5-smooth length >= n: FFT sizes pocketfft handles fastest."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _sample(image: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    """`image` linearly interpolated at fractional `positions` along `axis`, clamped to its ends."""
    n = image.shape[axis]
    positions = np.clip(positions, 0, n - 1)
    low = np.minimum(positions.astype(int), n - 2)
    fraction = np.expand_dims((positions - low).astype(np.float32), tuple(d for d in range(image.ndim) if d != axis))
    before, after = np.take(image, low, axis), np.take(image, low + 1, axis)
    return before + fraction * (after - before)


def _area_resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`image` shrunk to `shape` by area averaging (OpenCV's INTER_AREA): per axis, the exact
    integral of each output pixel's footprint, read off the running sum."""
    for axis, n in enumerate(shape):
        m = image.shape[axis]
        integral = np.concatenate([np.zeros_like(np.take(image, [0], axis)), np.cumsum(image, axis)], axis)
        image = np.diff(_sample(integral, np.arange(n + 1) * (m / n), axis), axis=axis) * (n / m)
    return image


def _linear_resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`image` resampled to `shape` by linear interpolation with pixel centres aligned
    (OpenCV's INTER_LINEAR)."""
    for axis, n in enumerate(shape):
        image = _sample(image, (np.arange(n) + 0.5) * (image.shape[axis] / n) - 0.5, axis)
    return image


def _padded(image: np.ndarray, pad: int) -> np.ndarray:
    """Reflect-pad by `pad` on every side, then on the bottom/right up to fast FFT sizes."""
    h, w = image.shape
    fh, fw = _fast_len(h + 2 * pad), _fast_len(w + 2 * pad)
    return np.pad(image, ((pad, fh - h - pad), (pad, fw - w - pad)), mode="symmetric")


def _around_origin(size: int, n: int) -> np.ndarray:
    """Indices of the `size` samples centred on 0 of a length-n periodic axis (negatives wrapped)."""
    return (np.arange(size) - size // 2) % n


def _otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of `kernel` zero-padded to `shape` with its centre moved to the origin."""
    full = np.zeros(shape, np.float32)
    full[np.ix_(_around_origin(kernel.shape[0], shape[0]), _around_origin(kernel.shape[1], shape[1]))] = kernel
    return np.fft.rfft2(full)


def _psf(otf: np.ndarray, shape: tuple[int, int], size: int) -> np.ndarray:
    """The size x size kernel around the origin of the inverse of `otf`."""
    full = np.fft.irfft2(otf, s=shape)
    return full[np.ix_(_around_origin(size, shape[0]), _around_origin(size, shape[1]))].astype(np.float32)


def _power(spectrum: np.ndarray) -> np.ndarray:
    """|spectrum|^2, without abs's square root."""
    return spectrum.real**2 + spectrum.imag**2


def _gradient_energy(shape: tuple[int, int]) -> np.ndarray:
    """|D_x|^2 + |D_y|^2 of forward differences on the rfft2 grid of `shape`."""
    fy = 2 - 2 * np.cos(2 * np.pi * np.fft.fftfreq(shape[0]))
    fx = 2 - 2 * np.cos(2 * np.pi * np.fft.rfftfreq(shape[1]))
    return fy[:, None] + fx[None, :]


def _gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.zeros_like(image), np.zeros_like(image)
    gx[:, :-1] = image[:, 1:] - image[:, :-1]
    gy[:-1] = image[1:] - image[:-1]
    return gx, gy


def _box5(image: np.ndarray) -> np.ndarray:
    """5 x 5 box sum, borders mirrored (OpenCV's default), as shifted sums per axis."""
    p = np.pad(image, 2, mode="reflect")
    p = p[:-4] + p[1:-3] + p[2:-2] + p[3:-1] + p[4:]
    return p[:, :-4] + p[:, 1:-3] + p[:, 2:-2] + p[:, 3:-1] + p[:, 4:]


def _smoothed(image: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur, borders mirrored: takes the noise off the latent before the
    shock filter. Cho & Lee use a bilateral filter; in NumPy that costs several times as much,
    and on blurred frames of the training clips it estimated no better."""
    p = np.pad(image, 1, mode="reflect")
    p = (p[:-2] + p[2:] + 2 * p[1:-1]) / 4
    return (p[:, :-2] + p[:, 2:] + 2 * p[:, 1:-1]) / 4


def _shock(image: np.ndarray, dt: float = 1.0) -> np.ndarray:
    """One step of Osher-Rudin shock filtering: edges become steps."""
    p = np.pad(image, 1, mode="reflect")
    up, down, left, right = p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]
    laplacian = up + down + left + right - 4 * image
    return image - dt * np.sign(laplacian) * np.hypot(0.5 * (right - left), 0.5 * (down - up))


def _centred(kernel: np.ndarray) -> np.ndarray:
    """`kernel` normalised to sum 1 and shifted so that its centroid is the centre pixel; a
    delta where nothing is left."""
    total = kernel.sum()
    size = kernel.shape[0]
    if total <= 0:
        return _delta(size)
    kernel = kernel / total
    ys, xs = np.indices(kernel.shape)
    dy, dx = size // 2 - (kernel * ys).sum(), size // 2 - (kernel * xs).sum()
    # Linear interpolation with zeros shifted in: positions past the zero border clamp onto it.
    kernel = np.pad(kernel, 1)
    for axis, shift in ((0, dy), (1, dx)):
        kernel = _sample(kernel, np.arange(size + 2) - shift, axis)
    kernel = np.maximum(kernel[1:-1, 1:-1], 0)
    return kernel / max(float(kernel.sum()), 1e-8)


def _spread(kernel: np.ndarray) -> float:
    """RMS distance (px) of a centred kernel's mass from its centre pixel."""
    ys, xs = np.indices(kernel.shape) - kernel.shape[0] // 2
    return float(np.sqrt((kernel * (ys**2 + xs**2)).sum()))


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected components of a small boolean array, each as an array of flat indices
    (a breadth-first fill: kernels hold at most a few hundred pixels)."""
    h, w = mask.shape
    unseen = set(np.flatnonzero(mask).tolist())
    components = []
    while unseen:
        queue, members = deque([unseen.pop()]), []
        while queue:
            index = queue.popleft()
            members.append(index)
            y, x = divmod(index, w)
            for ny in (y - 1, y, y + 1):
                for nx in (x - 1, x, x + 1):
                    neighbour = ny * w + nx
                    if 0 <= ny < h and 0 <= nx < w and neighbour in unseen:
                        unseen.remove(neighbour)
                        queue.append(neighbour)
        components.append(np.array(members))
    return components


def _cleaned(kernel: np.ndarray) -> np.ndarray:
    """Non-negative, small values dropped, only components holding real mass kept, centred."""
    kernel = np.maximum(kernel, 0)
    kernel[kernel < KERNEL_THRESHOLD * kernel.max()] = 0
    components = _components(kernel > 0)
    if len(components) > 1:
        flat = kernel.ravel()
        masses = np.array([flat[c].sum() for c in components])
        for component, mass in zip(components, masses):
            if mass <= 0.1 * masses.max():
                flat[component] = 0
    return _centred(kernel)


def _usefulness(image: np.ndarray) -> np.ndarray:
    """Xu & Jia's r map: near 1 on isolated strong edges, near 0 in fine texture and flat areas."""
    gx, gy = _gradients(image)
    return np.hypot(_box5(gx), _box5(gy)) / (_box5(np.hypot(gx, gy)) + 0.05)


def _edgiest_region(frame: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop (or the whole frame, if smaller) with the most gradient energy,
    as float32 grey. Energies are compared on a thumbnail of every `step`-th pixel: a 1080p
    frame costs little more than a small one."""
    h, w = frame.shape[:2]
    ch, cw = min(h, size), min(w, size)
    if (ch, cw) == (h, w):
        return _grey(frame)
    step = max(1, min(ch, cw) // 32)
    gx, gy = _gradients(_grey(frame[::step, ::step]))
    energy = np.zeros((gx.shape[0] + 1, gx.shape[1] + 1), np.float64)
    energy[1:, 1:] = np.hypot(gx, gy).cumsum(0).cumsum(1)
    ys = np.linspace(0, h - ch, max(1, (h - ch) // (ch // 4) + 1)).astype(int)
    xs = np.linspace(0, w - cw, max(1, (w - cw) // (cw // 4) + 1)).astype(int)
    y0, x0 = (ys + step - 1) // step, (xs + step - 1) // step   # thumbnail rows/columns inside the crop
    y1, x1 = (ys + ch) // step, (xs + cw) // step
    sums = energy[y1][:, x1] - energy[y0][:, x1] - energy[y1][:, x0] + energy[y0][:, x0]
    i, j = np.unravel_index(np.argmax(sums), sums.shape)
    return _grey(frame[ys[i] : ys[i] + ch, xs[j] : xs[j] + cw])


def estimate_kernel(frame: np.ndarray) -> np.ndarray:
    """The blur kernel of one frame: float32 (KERNEL_SIZE, KERNEL_SIZE), sum 1, centred, in the
    convolution convention (blurred = sharp convolved with it). A delta for frames smaller
    than MIN_SIDE or without edges.

    frame: uint8 (H, W, 3) RGB or (H, W) grey. Deterministic.
    """
    if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ValueError(
            f"estimate_kernel: expected a uint8 (H, W, 3) RGB or (H, W) grey frame, got {frame.dtype} shape {frame.shape}"
        )
    if min(frame.shape[:2]) < MIN_SIDE:
        return _delta()
    grey = _edgiest_region(frame, REGION)
    height, width = grey.shape
    kernel, latent, previous_pad, previous_hw = None, None, 0, (0, 0)
    for level, iterations in zip(range(len(ITERATIONS) - 1, -1, -1), ITERATIONS):
        scale = 2 ** (-level / 2)
        size = max(3, int(round(KERNEL_SIZE * scale)) | 1)
        h, w = max(16, int(round(height * scale))), max(16, int(round(width * scale)))
        blurred = _area_resized(grey, (h, w)) if level else grey
        padded = _padded(blurred, size)
        shape = padded.shape
        if kernel is None:
            kernel = _delta(size)
            latent = padded
        else:
            kernel = _centred(_linear_resized(kernel, (size, size)))
            inner = latent[previous_pad : previous_pad + previous_hw[0], previous_pad : previous_pad + previous_hw[1]]
            latent = _padded(_linear_resized(inner, (h, w)), size)
        previous_pad, previous_hw = size, (h, w)
        # Gradients next to the crop's (reflected, wrapped) border would teach the kernel the
        # border. A quarter kernel's margin estimated better than a whole one on small crops
        # (benchmarks/blur_kernel.py): actual kernels rarely fill their square.
        margin = size + size // 4
        interior = np.s_[margin : size + h - size // 4, margin : size + w - size // 4]
        bx, by = _gradients(padded)
        inside = np.zeros(shape, np.float32)
        inside[interior] = 1.0
        blurred_x, blurred_y = np.fft.rfft2(bx * inside), np.fft.rfft2(by * inside)
        useful = _usefulness(padded) * inside
        spectrum = np.fft.rfft2(padded)
        d2 = _gradient_energy(shape)
        keep_fraction = 0.03
        for it in range(iterations):
            px, py = _gradients(_shock(_smoothed(latent)))
            strength = np.hypot(px, py) * useful
            candidates = strength[interior].ravel()
            if candidates.max() <= 0:
                return _delta()  # a flat frame: no edge to learn a kernel from
            rank = int((1 - keep_fraction) * (candidates.size - 1))
            keep = strength >= np.partition(candidates, rank)[rank]
            sharp_x, sharp_y = np.fft.rfft2(px * keep), np.fft.rfft2(py * keep)
            energy = _power(sharp_x) + _power(sharp_y)
            otf = (np.conj(sharp_x) * blurred_x + np.conj(sharp_y) * blurred_y) / (energy + KERNEL_REGULARISER * energy.mean())
            kernel = _cleaned(_psf(otf, shape, size))
            if level == 0 and it == iterations - 1:
                break  # the last latent would go unused
            k = _otf(kernel, shape)
            weight = max(0.02 * 0.7**it, 0.002)  # the latent's gradient prior relaxes as the kernel settles
            latent = np.fft.irfft2(spectrum * (np.conj(k) / (_power(k) + weight * d2)), s=shape).astype(np.float32)
            keep_fraction = min(keep_fraction * 1.15, 0.1)
    # Even a sharp frame's edges are a pixel or so wide (optics, scaling), which next to the shock
    # filter's ideal steps reads as a blur of RMS radius 0.8-1.1 px (measured on the training
    # clips), and light noise (sigma 2) widens that to 1.1-1.3: a kernel no wider than 1.2 px is
    # not a blur this estimate can tell from none, and deconvolving a sharp frame by it only rings.
    # 1.2 rather than 1.3: the grid's light blurs (Gaussian sigma 1, defocus radius 1) read
    # 1.2-1.3 on some sources, and lose 0.3-0.5 dB passed through (benchmarks/RESULTS.md).
    return _delta() if _spread(kernel) < SHARP_SPREAD else kernel


@dataclass
class PeriodicKernel:
    """One stream's blur kernel, estimated from every `every`-th frame it is asked about and
    reused for the frames in between: a video's blur changes slowly next to its frame rate, and
    one estimate costs several frames' window-model budget. Keep one per stream."""

    every: int = EVERY
    kernel: np.ndarray | None = None
    age: int = 0  # frames since the kernel was estimated

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"PeriodicKernel: every must be >= 1, got {self.every}")

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self.kernel is None or self.age >= self.every:
            self.kernel, self.age = estimate_kernel(frame), 0
        self.age += 1
        return self.kernel
