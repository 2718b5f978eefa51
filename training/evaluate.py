"""Validation: fixed-seed degraded windows of the held-out clip, PSNR/SSIM, and restoring them.

Used by the training loop (progress bar, CSV log, model card) and by benchmarks/quality.py, so
both measure the same frames with the same degradations. Windows at the clip's ends mirror
their frames (frame -1 := frame 1), as the serving window model does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import structural_similarity

from training.blur_kernel import estimate_kernel
from training.contract import TASKS
from training.data import VALIDATION_CLIP, load_clip
from training.degradations import (bicubic_downscale, blur, defocus_kernel, gaussian_noise, h264_compress,
                                   motion_blur_kernel)
from training.masks import VALIDATION_KINDS, random_mask_window
from training.network import NetConfig, VideoRestorationNet
from training.processing import ServingNet, pack_masks


@dataclass
class ValidationSet:
    """Degraded windows (K, T, h, w, 3) and their clean centre frames (K, H, W, 3), uint8; for
    inpaint the windows are clean and `masks` (K, T, h, w, 1), 255 = fill, is the degradation."""

    task: str
    windows: np.ndarray
    targets: np.ndarray
    centres: list[int]
    masks: np.ndarray | None = None


def mirrored_window(clip: np.ndarray, centre: int, frames: int) -> np.ndarray:
    """The T frames around `centre`, mirrored at the clip's ends (index -1 -> 1, n -> n-2)."""
    n = len(clip)
    idx = [abs(i) if i < n else 2 * (n - 1) - i for i in range(centre - frames // 2, centre + frames // 2 + 1)]
    return clip[idx]


DEBLOCK_VALIDATION_CRF = 35.0  # deblock's validation: the window as one H.264 stream at this CRF
# The tasks `degrade_fixed` validates (cards, the quality benchmark); inpainting has its own benchmark.
FIXED_DEGRADATION_TASKS = tuple(name for name, task in TASKS.items() if not task.masked)


def degrade_fixed(task: str, window: np.ndarray, seed: int, sigma: float = 25.0) -> np.ndarray:
    """The validation degradation of `task`, fixed by `seed`: Gaussian noise at `sigma` (denoise);
    H.264 at CRF DEBLOCK_VALIDATION_CRF (deblock; deterministic); alternating motion blur (kernel
    15) and defocus (radius 3) plus sigma-1 noise (deblur); bicubic x4 (sr4)."""
    rng = np.random.default_rng(seed)
    if task == "denoise":
        return gaussian_noise(window, sigma, rng)
    if task == "deblock":
        return h264_compress(window, DEBLOCK_VALIDATION_CRF)
    if task == "deblur":
        kernel = motion_blur_kernel(15, rng) if seed % 2 == 0 else defocus_kernel(3.0)
        return gaussian_noise(blur(window, kernel), 1.0, rng)
    if task == "sr4":
        return bicubic_downscale(window, 4)
    raise ValueError(f"no validation degradation for task {task!r}")


def validation_set(
    task: str,
    frames: int = 5,
    count: int = 8,
    crop: int | None = None,
    sigma: float = 25.0,
    clip_name: str = VALIDATION_CLIP,
) -> ValidationSet:
    """`count` windows evenly spaced over the held-out clip, centre-cropped to `crop` (None = full
    frame, cut to a multiple of 16), each degraded with seed = its centre frame index (inpaint:
    masks from training/masks.py with that seed)."""
    clip = load_clip(clip_name)
    n, h, w, _ = clip.shape
    ch, cw = (h, w) if crop is None else (min(crop, h), min(crop, w))
    ch, cw = ch - ch % 16, cw - cw % 16
    y, x = (h - ch) // 2, (w - cw) // 2
    centres = [int(c) for c in np.linspace(0, n - 1, count + 2)[1:-1].round()]
    windows, targets, masks = [], [], []
    for c in centres:
        clean = mirrored_window(clip, c, frames)[:, y : y + ch, x : x + cw]
        if task == "inpaint":
            windows.append(clean)
            masks.append(random_mask_window(frames, ch, cw, np.random.default_rng(c), kinds=VALIDATION_KINDS)[..., None])
        else:
            windows.append(degrade_fixed(task, clean, seed=c, sigma=sigma))
        targets.append(clean[frames // 2])
    return ValidationSet(task, np.stack(windows), np.stack(targets), centres, np.stack(masks) if masks else None)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 images (or stacks), peak 255, over all pixels."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB of uint8 images (or stacks) (..., H, W, 3) over the pixels where `mask`
    (..., H, W, 1) is non-zero: the inpainting metric (outside, the frame is returned unchanged)."""
    inside = np.broadcast_to(mask != 0, a.shape)
    mse = np.mean((a[inside].astype(np.float64) - b[inside].astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of uint8 RGB frames (..., H, W, 3), per frame then averaged."""
    a, b = a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:])
    return float(np.mean([structural_similarity(x, y, channel_axis=2, data_range=255) for x, y in zip(a, b)]))


def network_planes(
    config: NetConfig, windows: np.ndarray, masks: np.ndarray | None = None
) -> list[np.ndarray]:
    """What the served `<task>_net` receives for windows (K, T, h, w, 3) [and inpainting masks
    (K, T, h, w, 1)], in its input order (training/contract.py `net_inputs`): inpaint's masks
    bit-packed as the window model packs them, deblur's blur kernels
    (K, k, k) float32 estimated on the centre frames as the window model does, the window cut to the
    frames the network takes (`config.input_frames`: T=1 gets each centre frame only; a propagating
    inpainting network all 21, the propagation runs in its graph)."""
    t, frames = windows.shape[1], config.input_frames
    if frames != t:
        lo = t // 2 - frames // 2
        windows = windows[:, lo : lo + frames]
        masks = None if masks is None else masks[:, lo : lo + frames]
    planes = [windows] if masks is None else [windows, pack_masks(masks)]
    if config.deconvolved:
        planes.append(np.stack([estimate_kernel(w[len(w) // 2]) for w in windows]))
    return planes


@torch.no_grad()
def restore(
    net: VideoRestorationNet, windows: np.ndarray, batch: int = 2, masks: np.ndarray | None = None
) -> np.ndarray:
    """Run the uint8 serving path (network_planes, then ServingNet) over windows (K, T, h, w, 3)
    [and inpainting masks (K, T, h, w, 1)] -> (K, H, W, 3) uint8."""
    serving = ServingNet(net).eval()
    device = next(net.parameters()).device
    planes = network_planes(net.config, windows, masks)
    out = [
        serving(*(torch.from_numpy(np.ascontiguousarray(p[i : i + batch])).to(device) for p in planes)).cpu().numpy()
        for i in range(0, len(windows), batch)
    ]
    return np.concatenate(out)


def evaluate(net: VideoRestorationNet, val: ValidationSet) -> tuple[float, float]:
    """(PSNR, SSIM) of the restored validation frames against the clean ones; for inpaint the
    PSNR is inside the centre frames' masks."""
    restored = restore(net, val.windows, masks=val.masks)
    if val.masks is not None:
        centre = val.masks[:, val.masks.shape[1] // 2]
        return masked_psnr(restored, val.targets, centre), ssim(restored, val.targets)
    return psnr(restored, val.targets), ssim(restored, val.targets)
