"""Degradations: clean uint8 windows -> what a user's footage looks like, one function each.

Every function takes and returns uint8 RGB frames (T, H, W, 3) (the network sees uint8 on the wire,
so inputs are quantised exactly as served) and draws randomness only from the `rng` it is given:
the same seed gives the same output. `degrade_window` samples a task's mixture of degradations
with the parameter ranges below; validation calls the single functions with fixed parameters.

The mixtures are blind and realistic (after Real-ESRGAN's randomised pipeline, moderated so that
light and absent degradations are common, as they are in users' footage): every task sometimes gets
no degradation at all, and the network must then hand the input back unchanged.

Mixtures (sampled by `degrade_window`; every choice is independent):
  denoise  nothing at all with p=0.15; otherwise noise with p=0.8: sigma = 50 u^1.5 (u ~ U[0, 1]:
           light noise is common), Gaussian or Poisson-Gaussian (50/50); then compression with p=0.6:
           JPEG quality ~ U[10, 95] or H.264 (libx264) CRF ~ U[18, 40] (50/50). Training's
           --compressed-prob p first draws compression alone (same ranges, no noise) with p;
           --noisy-compressed-prob sets the 0.6.
  deblock  nothing at all with p=0.1; otherwise light noise with p=0.3: sigma = 5 u (u ~ U[0, 1]),
           Gaussian or Poisson-Gaussian (50/50), as a camera leaves it before the encoder; then
           compression with p=0.9: JPEG quality ~ U[10, 95] or H.264 (libx264) CRF ~ U[18, 40]
           (50/50). The artifacts of lossy compression alone, where denoise splits its capacity
           between noise and compression.
  deblur   sharp with p=0.15; else one kernel for the window: camera-shake trajectory (7..21 px),
           straight motion (3..21 px, any angle), defocus disk (radius 0.5..4.5) or Gaussian (sigma
           0.5..3); then Gaussian noise sigma ~ U[0, 3] with p=0.6; then with p=0.3 light
           compression (JPEG 50..95 or H.264 CRF 18..30).
  sr4      x4 downscale by one of the scalers users' software uses (DOWNSCALERS: antialiased
           bicubic, area, bilinear and bicubic without antialiasing, Gaussian blur sigma 0.8..1.6
           then decimation; p = 0.3, 0.15, 0.15, 0.15, 0.25, or training's --downscaler-probs);
           then Gaussian noise sigma ~ U[0, 3] with p=0.2; then with p=0.4 compression (JPEG
           40..95 or H.264 CRF 18..32).
Every H.264 window is one stream of its own, starting at its intra frame; training's
--h264-preroll N (any task) encodes 0..N frames before it (`h264_compress`), so that the window's
frames are predicted ones, as in the middle of a real stream.
"""
from __future__ import annotations

import io

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F

SIGMA_MAX = 50.0
DENOISE_JPEG, DENOISE_CRF = (10, 95), (18.0, 40.0)  # denoise's and deblock's compression: JPEG quality, H.264 CRF
DENOISE_COMPRESS_PROB = 0.6  # denoise's mixture: how often a window is compressed after its noise
DEBLOCK_SIGMA_MAX = 5.0  # deblock: the light noise a camera leaves under the encoder's artifacts


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


# BT.601 limited-range RGB -> YCbCr (rows Y, Cb, Cr; inputs in 0..255), what SD and most H.264 use.
_YCBCR = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def _to_yuv420(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> yuv420p planes stacked as FFmpeg lays them out ((H * 3 // 2, W))."""
    h, w, _ = frame.shape
    ycc = frame.astype(np.float64) @ _YCBCR.T + _YCBCR_OFFSET
    chroma = ycc[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    planes = [ycc[..., 0], chroma[..., 0].reshape(h // 4, w), chroma[..., 1].reshape(h // 4, w)]
    return _quantise(np.concatenate(planes))


def _from_yuv420(planes: np.ndarray) -> np.ndarray:
    """yuv420p planes ((H * 3 // 2, W)) -> uint8 RGB (H, W, 3), chroma upsampled by repetition."""
    h, w = planes.shape[0] * 2 // 3, planes.shape[1]
    cb = planes[h : h + h // 4].reshape(h // 2, w // 2)
    cr = planes[h + h // 4 :].reshape(h // 2, w // 2)
    chroma = np.stack([cb, cr], axis=-1).repeat(2, axis=0).repeat(2, axis=1)
    ycc = np.concatenate([planes[:h, :, None], chroma], axis=-1).astype(np.float64) - _YCBCR_OFFSET
    return _quantise(ycc @ np.linalg.inv(_YCBCR).T)


def preroll_indices(frames: int, preroll: int) -> np.ndarray:
    """Indices into a window of `frames` frames for `preroll` frames played before it: the window
    mirrored back in time (ping-pong when preroll >= frames), ending next to its first frame."""
    return np.pad(np.arange(frames), (preroll, 0), mode="reflect")[:preroll]


def h264_compress(frames: np.ndarray, crf: float, preset: str = "veryfast", preroll: int = 0) -> np.ndarray:
    """Encode the frames as one H.264 stream (libx264 through PyAV, yuv420p, first frame intra, the
    rest predicted) at constant rate factor `crf` (0..51) and decode them again: the blocking,
    ringing and smeared texture of compressed video, and chroma subsampling. H and W must be even
    (multiples of 4 here, for the chroma planes' layout).

    preroll: frames encoded before the window and dropped (`preroll_indices`), so that the window
    sits in the middle of a group of pictures, every frame predicted, as nearly all frames of a
    real stream do (one intra frame per 250 by default), rather than starting at the stream's
    intra frame, which is coded unlike the predicted frames after it (often sharper).

    Bit-exact for the same input: the colour conversion is done here in NumPy (swscale's SIMD
    paths depend on the buffer's memory alignment), and x264 runs on one thread without its
    lookahead (its macroblock-tree rate control gave different streams for the same input)."""
    t, h, w, _ = frames.shape
    if h % 4 or w % 4:
        raise ValueError(f"h264_compress: frame size {h}x{w} must be a multiple of 4 (yuv420p)")
    if preroll < 0:
        raise ValueError(f"h264_compress: preroll must be >= 0, got {preroll}")
    if preroll:
        return h264_compress(np.concatenate([frames[preroll_indices(t, preroll)], frames]), crf, preset)[preroll:]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": f"{crf:g}", "preset": preset, "x264-params": "threads=1:rc-lookahead=0:no-mbtree=1"}
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(_to_yuv420(frame), format="yuv420p")
            picture.pts = i
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    with av.open(io.BytesIO(buffer.getvalue()), format="h264") as container:
        out = np.stack([_from_yuv420(f.to_ndarray(format="yuv420p")) for f in container.decode(video=0)])
    if out.shape != frames.shape:
        raise RuntimeError(f"h264_compress: {t} frames {h}x{w} came back as {out.shape}")
    return out


def linear_motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A straight motion streak `length` px long (>= 1) at `angle_deg`, anti-aliased; odd size, sum 1."""
    size = 2 * int(np.ceil(length / 2)) + 1
    fine = 8
    kernel = np.zeros((size * fine, size * fine), np.float32)
    centre = size * fine / 2
    dx, dy = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    half = (length - 1) * fine / 2
    cv2.line(kernel, (round(centre - half * dx - 0.5), round(centre - half * dy - 0.5)),
             (round(centre + half * dx - 0.5), round(centre + half * dy - 0.5)), 1.0, fine)
    kernel = kernel.reshape(size, fine, size, fine).sum(axis=(1, 3))
    return kernel / kernel.sum()


def gaussian_kernel(sigma: float) -> np.ndarray:
    """An isotropic Gaussian of std `sigma` px (out-of-focus lenses, soft scalers); odd size, sum 1."""
    radius = max(1, int(np.ceil(3 * sigma)))
    g = cv2.getGaussianKernel(2 * radius + 1, sigma).astype(np.float32)
    return g @ g.T


def padded_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """A square odd kernel zero-padded (centred) to float32 size x size."""
    out = np.zeros((size, size), np.float32)
    o = (size - kernel.shape[0]) // 2
    out[o : o + kernel.shape[0], o : o + kernel.shape[1]] = kernel
    return out


def convolution_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """The convolution kernel that `blur` applies with `kernel` (it correlates, as cv2.filter2D
    does: the flipped kernel), zero-padded to at least size x size: the convention of
    training/blur_kernel.py's estimates and the deconvolution's kernel input."""
    return padded_kernel(kernel[::-1, ::-1], max(size, kernel.shape[0]))


def _resize(frames: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    return np.stack([cv2.resize(f, size, interpolation=interpolation) for f in frames])


# The x4 downscalers a user's low-resolution footage may have come from (name -> what it is).
DOWNSCALERS = {
    "bicubic": "antialiased bicubic (PIL, MATLAB imresize, FFmpeg's default scaler)",
    "area": "area averaging (OpenCV INTER_AREA, box filter)",
    "bilinear": "bilinear without antialiasing (OpenCV's default resize)",
    "cubic": "bicubic without antialiasing (OpenCV INTER_CUBIC)",
    "gaussian": "Gaussian blur (sigma 0.8..1.6) then decimation",
}
DOWNSCALER_PROBS = (0.3, 0.15, 0.15, 0.15, 0.25)  # sr4's mixture, in DOWNSCALERS' order
SOFT_SIGMA = (0.5, 1.5)  # px: training's soft originals (training/data.py soften), out of focus or scaled before


def downscale(frames: np.ndarray, factor: int, kernel: str, sigma: float = 1.2) -> np.ndarray:
    """Downscale uint8 (T, H, W, 3) by `factor` (H, W multiples of it) with one of DOWNSCALERS;
    `sigma` is the Gaussian's (gaussian only)."""
    t, h, w, _ = frames.shape
    if h % factor or w % factor:
        raise ValueError(f"downscale: frame size {h}x{w} is not a multiple of {factor}")
    size = (w // factor, h // factor)
    if kernel == "bicubic":
        return bicubic_downscale(frames, factor)
    if kernel == "area":
        return _resize(frames, size, cv2.INTER_AREA)
    if kernel == "bilinear":
        return _resize(frames, size, cv2.INTER_LINEAR)
    if kernel == "cubic":
        return _resize(frames, size, cv2.INTER_CUBIC)
    if kernel == "gaussian":
        return _resize(blur(frames, gaussian_kernel(sigma)), size, cv2.INTER_LINEAR)
    raise ValueError(f"downscale: unknown kernel {kernel!r}; known: {', '.join(DOWNSCALERS)}")


def _compress(frames: np.ndarray, rng: np.random.Generator, jpeg: tuple[int, int], crf: tuple[float, float],
              h264_preroll: int = 0) -> np.ndarray:
    """JPEG (quality drawn from `jpeg`) or H.264 (CRF drawn from `crf`), 50/50; H.264 with 0 to
    `h264_preroll` frames of pre-roll (drawn only when it is not 0, so other draws stay as they were)."""
    if rng.random() < 0.5:
        return jpeg_compress(frames, int(rng.integers(jpeg[0], jpeg[1] + 1)))
    crf_value = float(rng.uniform(*crf))
    preroll = int(rng.integers(0, h264_preroll + 1)) if h264_preroll else 0
    return h264_compress(frames, crf_value, preroll=preroll)


def _noise(frames: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian or Poisson-Gaussian noise (50/50) of std `sigma` at mid-grey."""
    if rng.random() < 0.5:
        return gaussian_noise(frames, sigma, rng)
    return poisson_gaussian_noise(frames, sigma, rng.uniform(0.0, 1.0), rng)


def degrade_window(
    task: str, frames: np.ndarray, rng: np.random.Generator, compressed_prob: float = 0.0,
    downscaler_probs: tuple[float, ...] = DOWNSCALER_PROBS, h264_preroll: int = 0,
    noisy_compressed_prob: float = DENOISE_COMPRESS_PROB,
) -> np.ndarray:
    """Sample `task`'s degradation mixture (in the module docstring) for one window. denoise: with
    `compressed_prob`, before the mixture, the window is only compressed (JPEG or H.264, no noise),
    the case the mixture alone draws for about one window in ten; `noisy_compressed_prob`: how often
    the mixture compresses a window after its noise (deblock's windows, not denoise's, are where
    compression artifacts are the point). sr4: `downscaler_probs` weighs the DOWNSCALERS, in their
    order. Every task: H.264 windows get 0 to `h264_preroll` frames of
    pre-roll (`h264_compress`), i.e. sit mid-GOP as in real streams; 0 keeps them at the intra frame."""
    if task == "denoise":
        if compressed_prob and rng.random() < compressed_prob:
            return _compress(frames, rng, DENOISE_JPEG, DENOISE_CRF, h264_preroll)
        if rng.random() < 0.15:
            return frames.copy()
        out = _noise(frames, SIGMA_MAX * rng.random() ** 1.5, rng) if rng.random() < 0.8 else frames
        compress = rng.random() < noisy_compressed_prob
        return _compress(out, rng, DENOISE_JPEG, DENOISE_CRF, h264_preroll) if compress else out.copy()
    if task == "deblock":
        if rng.random() < 0.1:
            return frames.copy()
        out = _noise(frames, DEBLOCK_SIGMA_MAX * rng.random(), rng) if rng.random() < 0.3 else frames
        return _compress(out, rng, DENOISE_JPEG, DENOISE_CRF, h264_preroll) if rng.random() < 0.9 else out.copy()
    if task == "deblur":
        kind = rng.random()
        if kind < 0.15:
            out = frames
        elif kind < 0.45:
            out = blur(frames, motion_blur_kernel(int(rng.choice([7, 9, 11, 13, 15, 17, 19, 21])), rng))
        elif kind < 0.65:
            out = blur(frames, linear_motion_kernel(rng.uniform(3, 21), rng.uniform(0, 180)))
        elif kind < 0.85:
            out = blur(frames, defocus_kernel(rng.uniform(0.5, 4.5)))
        else:
            out = blur(frames, gaussian_kernel(rng.uniform(0.5, 3.0)))
        if rng.random() < 0.6:
            out = gaussian_noise(out, rng.uniform(0.0, 3.0), rng)
        return _compress(out, rng, (50, 95), (18, 30), h264_preroll) if rng.random() < 0.3 else out.copy()
    if task == "sr4":
        kernel = str(rng.choice(list(DOWNSCALERS), p=downscaler_probs))
        out = downscale(frames, 4, kernel, sigma=rng.uniform(0.8, 1.6))
        if rng.random() < 0.2:
            out = gaussian_noise(out, rng.uniform(0.0, 3.0), rng)
        return _compress(out, rng, (40, 95), (18, 32), h264_preroll) if rng.random() < 0.4 else out
    raise ValueError(f"degrade_window: no degradation defined for task {task!r} (denoise, deblock, deblur, sr4)")
