"""Degradations: clean uint8 windows -> what a user's footage looks like, one function each.

Every function takes and returns uint8 RGB frames (T, H, W, 3) (the network sees uint8 on the wire,
so inputs are quantised exactly as served) and draws randomness only from the `rng` it is given:
the same seed gives the same output. `degrade_window` samples a task's mixture of degradations
with the parameter ranges below; validation calls the single functions with fixed parameters.

Parameter ranges (sampled by `degrade_window`):
  denoise  sigma ~ U[0, 50] (grey levels, at mid-grey), Gaussian or Poisson-Gaussian (50/50);
           then with p=0.5 compression: JPEG quality ~ U[30, 95] per frame.
  deblur   motion blur (p=0.6, random trajectory, kernel 7..21 px) or defocus (disk radius 1..5 px),
           one kernel for the window (blur between neighbouring frames is correlated), or with
           p=0.1 no blur at all (sharp footage must come back unharmed);
           then Gaussian noise sigma ~ U[0, 2].
  sr4      antialiased bicubic x4 downscale (the classic SR degradation).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

SIGMA_MAX = 50.0


def _quantise(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def gaussian_noise(frames: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise of std `sigma` grey levels (0..50), independent per frame."""
    return _quantise(frames.astype(np.float32) + rng.normal(0.0, sigma, frames.shape).astype(np.float32))


def poisson_gaussian_noise(
    frames: np.ndarray, sigma: float, shot_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Sensor-like noise: variance a*x + b, so dark pixels are cleaner than bright ones.

    `sigma` (0..50) is the std at mid-grey (x = 127.5); `shot_fraction` (0..1) is the share of that
    variance which is signal-dependent (shot noise), the rest is signal-independent (read noise).
    The shot part uses the Gaussian approximation of Poisson noise, accurate at these photon counts.
    """
    x = frames.astype(np.float32)
    variance = sigma**2 * ((1.0 - shot_fraction) + shot_fraction * x / 127.5)
    return _quantise(x + np.sqrt(variance) * rng.standard_normal(frames.shape).astype(np.float32))


def jpeg_compress(frames: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode each frame as JPEG at `quality` (1..100; sampled in 30..95): 8x8 blocking
    and ringing, as intra-coded video frames show. Deterministic, so it takes no rng."""
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        # OpenCV's encoder assumes BGR: convert so that chroma subsampling hits the right channels.
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError(f"cv2.imencode failed on a frame of shape {frame.shape}")
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return out


def motion_blur_kernel(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random camera-shake kernel (size x size, odd, 7..21): a random-walk trajectory with
    momentum, rasterised and normalised to sum 1 (after Boracchi & Foi's trajectories)."""
    steps = 64
    angle = rng.uniform(0, 2 * np.pi)
    velocity = np.array([np.cos(angle), np.sin(angle)])
    position = np.zeros(2)
    points = []
    for _ in range(steps):
        # Mostly keep direction (momentum), sometimes turn: straight streaks and curved shakes.
        velocity = 0.9 * velocity + 0.35 * rng.standard_normal(2)
        velocity /= max(np.linalg.norm(velocity), 1e-6)
        position = position + velocity
        points.append(position.copy())
    points = np.array(points)
    points -= points.mean(axis=0)
    extent = np.abs(points).max()
    points *= (size / 2 - 1) * rng.uniform(0.4, 1.0) / max(extent, 1e-6)
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    for x, y in points:
        # Bilinear splat keeps thin trajectories smooth.
        x0, y0 = int(np.floor(x + centre)), int(np.floor(y + centre))
        fx, fy = x + centre - x0, y + centre - y0
        for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= x0 + dx < size and 0 <= y0 + dy < size:
                kernel[y0 + dy, x0 + dx] += wgt
    return kernel / kernel.sum()


def defocus_kernel(radius: float) -> np.ndarray:
    """An anti-aliased disk of `radius` pixels (1..5): out-of-focus blur. Sum 1."""
    size = 2 * int(np.ceil(radius)) + 1
    fine = 8  # supersample the disk edge
    coords = (np.arange(size * fine) + 0.5) / fine - size / 2
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    kernel = disk.reshape(size, fine, size, fine).mean(axis=(1, 3))
    return kernel / kernel.sum()


def blur(frames: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every frame with `kernel` (reflected borders)."""
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        out[i] = _quantise(cv2.filter2D(frame.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT))
    return out


def bicubic_downscale(frames: np.ndarray, factor: int = 4) -> np.ndarray:
    """Antialiased bicubic downscale by `factor` (H and W must be multiples of it), as PIL and
    MATLAB's imresize do: the standard SR degradation."""
    t, h, w, _ = frames.shape
    if h % factor or w % factor:
        raise ValueError(f"bicubic_downscale: frame size {h}x{w} is not a multiple of {factor}")
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(h // factor, w // factor), mode="bicubic", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def degrade_window(task: str, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample `task`'s degradation mixture (ranges in the module docstring) for one window."""
    if task == "denoise":
        sigma = rng.uniform(0.0, SIGMA_MAX)
        if rng.random() < 0.5:
            out = gaussian_noise(frames, sigma, rng)
        else:
            out = poisson_gaussian_noise(frames, sigma, rng.uniform(0.0, 1.0), rng)
        if rng.random() < 0.5:
            out = jpeg_compress(out, int(rng.integers(30, 96)))
        return out
    if task == "deblur":
        kind = rng.random()
        if kind < 0.1:
            blurred = frames
        elif kind < 0.64:
            blurred = blur(frames, motion_blur_kernel(int(rng.choice([7, 9, 11, 13, 15, 17, 19, 21])), rng))
        else:
            blurred = blur(frames, defocus_kernel(rng.uniform(1.0, 5.0)))
        return gaussian_noise(blurred, rng.uniform(0.0, 2.0), rng)
    if task == "sr4":
        return bicubic_downscale(frames, 4)
    raise ValueError(f"degrade_window: no degradation defined for task {task!r} (denoise, deblur, sr4)")
