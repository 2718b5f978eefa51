"""Blind blur-kernel estimation (training/blur_kernel.py, NumPy only, for the window model): speed
at 1080p and quality on blurred real frames, optionally side by side with another estimator.

    python -m benchmarks.blur_kernel [--speed-frames 8] [--quality-frames 12] [--seeds 1]
                                     [--baseline FILE] [--region 256] [--iterations 5,5,5,5]

--baseline FILE adds the `estimate_kernel` of another module file, e.g. the OpenCV + SciPy estimator
this one replaced: `git show 23aa876:training/blur_kernel.py > /tmp/opencv_blur_kernel.py`.
--region and --iterations override blur_kernel.REGION and ITERATIONS, to weigh other trade-offs.

Speed: process CPU time (all threads) of one call on 1920x1080 frames of bigbuckbunny (720p,
upscaled bicubically) blurred by a 15 px camera-shake kernel, after one warm-up call.

Quality: frames of the held-out clip (bikes) and the scikit-image stills, each blurred with a kernel
of each family the deblur task trains on (training/degradations.py: camera shake 7..21 px, straight
motion 3..21 px, defocus radius 0.5..4.5, Gaussian sigma 0.5..3, or none), then Gaussian noise
sigma 0..3 (p=0.6) and light JPEG / H.264 compression (p=0.3), parameters drawn from a fixed seed
per frame, family and draw (--seeds draws each). Per family: PSNR of the blurred frame, and of the
frame Wiener-deconvolved (training/deconvolution.py's WienerDeconvolution, NSR 0.01: the deblur
graph's module) with the true kernel and with each estimate; the L1 distance of each estimate to
the true kernel (0 = equal, 2 = disjoint); and how often the deconvolved frame came out worse than
the blurred one (always for "none": even its true kernel, a delta, loses 1% gain to NSR 0.01).
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from training import blur_kernel
from training.deconvolution import WienerDeconvolution
from training.data import VALIDATION_CLIP, load_clip, load_stills
from training.degradations import (
    blur, convolution_kernel, defocus_kernel, gaussian_kernel, gaussian_noise, h264_compress, jpeg_compress,
    linear_motion_kernel, motion_blur_kernel, padded_kernel,
)
from training.evaluate import psnr

FAMILIES = ("shake", "linear", "defocus", "gaussian", "none")
WIENER = WienerDeconvolution()


def load_estimator(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """`estimate_kernel` of the Python module file at `path`."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"--baseline: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.estimate_kernel


@torch.no_grad()
def wiener(frame: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) frame deconvolved by `kernel` (convolution convention) as the deblur graph does."""
    planes = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    out = WIENER(planes, torch.from_numpy(np.ascontiguousarray(kernel, np.float32))[None])
    return (out[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def family_kernel(family: str, rng: np.random.Generator) -> np.ndarray:
    """A correlation kernel of `family`, drawn as degrade_window draws the deblur task's."""
    if family == "shake":
        return motion_blur_kernel(int(rng.choice([7, 9, 11, 13, 15, 17, 19, 21])), rng)
    if family == "linear":
        return linear_motion_kernel(rng.uniform(3, 21), rng.uniform(0, 180))
    if family == "defocus":
        return defocus_kernel(rng.uniform(0.5, 4.5))
    if family == "gaussian":
        return gaussian_kernel(rng.uniform(0.5, 3.0))
    return np.ones((1, 1), np.float32)


def degraded(frame: np.ndarray, family: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(blurred + noisy + maybe compressed frame, its true convolution kernel)."""
    rng = np.random.default_rng(seed)
    kernel = family_kernel(family, rng)
    out = blur(frame[None], kernel)
    if rng.random() < 0.6:
        out = gaussian_noise(out, rng.uniform(0.0, 3.0), rng)
    if rng.random() < 0.3:
        out = jpeg_compress(out, int(rng.integers(50, 96))) if rng.random() < 0.5 else h264_compress(out, rng.uniform(18, 30))
    return out[0], convolution_kernel(kernel, blur_kernel.KERNEL_SIZE)  # streaks up to 21 px come in 23 x 23


def quality_frames(count: int) -> list[tuple[str, np.ndarray]]:
    """`count` frames of the held-out clip, evenly spaced, and every still (centre crop of at most
    480 x 640), cut to multiples of 4 (H.264's chroma planes)."""
    clip = load_clip(VALIDATION_CLIP)
    frames = [(f"{VALIDATION_CLIP}[{i}]", clip[i]) for i in np.linspace(0, len(clip) - 1, count).round().astype(int)]
    for i, still in enumerate(load_stills()):
        h, w = min(still.shape[0], 480), min(still.shape[1], 640)
        y, x = (still.shape[0] - h) // 2, (still.shape[1] - w) // 2
        frames.append((f"still {i}", still[y : y + h - h % 4, x : x + w - w % 4]))
    return frames


def speed(estimators: dict, count: int) -> None:
    clip = load_clip("bigbuckbunny.mp4")
    kernel = motion_blur_kernel(15, np.random.default_rng(0))
    frames = [blur(cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_CUBIC)[None], kernel)[0]
              for f in clip[np.linspace(0, len(clip) - 1, count).round().astype(int)]]
    times = {name: [] for name in estimators}
    for estimate in estimators.values():
        estimate(frames[0])
    for frame in frames:  # the estimators take turns, so that the machine's load hits both alike
        for name, estimate in estimators.items():
            start = time.process_time()
            estimate(frame)
            times[name].append(1000 * (time.process_time() - start))
    print(f"\n### CPU per call on {count} 1920x1080 frames (process_time, all threads; load average {os.getloadavg()[0]:.1f})\n")
    print("| estimator | mean ms | median ms | min ms | max ms | amortised over K = 2 / 4 / 8 frames, ms |\n|---|---|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {np.mean(t):.1f} | {np.median(t):.1f} | {min(t):.1f} | {max(t):.1f} | "
              + " / ".join(f"{np.mean(t) / k:.1f}" for k in (2, 4, 8)) + " |")


def quality(estimators: dict, count: int, seeds: int) -> None:
    frames = quality_frames(count)
    rows = {family: {"blurred": [], "true kernel": [], **{n: [] for n in estimators}, **{f"L1 {n}": [] for n in estimators}}
            for family in FAMILIES}
    for (f, (_, frame)), (k, family), s in itertools.product(enumerate(frames), enumerate(FAMILIES), range(seeds)):
        blurred, truth = degraded(frame, family, seed=1000 * f + 100 * s + k)
        row = rows[family]
        row["blurred"].append(psnr(blurred, frame))
        row["true kernel"].append(psnr(wiener(blurred, truth), frame))
        for name, estimate in estimators.items():
            kernel = estimate(blurred)
            row[name].append(psnr(wiener(blurred, kernel), frame))
            row[f"L1 {name}"].append(float(np.abs(padded_kernel(kernel, len(truth)) - truth).sum()))
    names = list(estimators)
    print(f"\n### Quality: {len(frames)} frames x {seeds} draw(s) per blur family, mean PSNR dB (Wiener, NSR 0.01)\n")
    print("| blur | blurred | Wiener, true kernel | " + " | ".join(f"Wiener, {n}" for n in names)
          + " | " + " | ".join(f"kernel L1, {n}" for n in names) + " | " + " | ".join(f"worse than blurred, {n}" for n in names) + " |")
    print("|---" * (3 + 3 * len(names)) + "|")
    for family, row in rows.items():
        worse = [sum(a < b for a, b in zip(row[n], row["blurred"])) for n in names]
        print(f"| {family} | {np.mean(row['blurred']):.2f} | {np.mean(row['true kernel']):.2f} | "
              + " | ".join(f"{np.mean(row[n]):.2f}" for n in names) + " | "
              + " | ".join(f"{np.mean(row['L1 ' + n]):.2f}" for n in names) + " | "
              + " | ".join(f"{w}/{len(row['blurred'])}" for w in worse) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-frames", type=int, default=8, help="1080p frames timed per estimator (0: skip)")
    parser.add_argument("--quality-frames", type=int, default=12, help="held-out clip frames beside the stills (0: skip)")
    parser.add_argument("--seeds", type=int, default=1, help="degradations drawn per frame and blur family")
    parser.add_argument("--baseline", help="a module file whose estimate_kernel to compare with")
    parser.add_argument("--region", type=int, default=blur_kernel.REGION, help="crop side the NumPy estimator works on")
    parser.add_argument("--iterations", default=",".join(map(str, blur_kernel.ITERATIONS)),
                        help="NumPy estimator's rounds per pyramid level, coarse to fine")
    args = parser.parse_args()
    blur_kernel.REGION, blur_kernel.ITERATIONS = args.region, tuple(int(n) for n in args.iterations.split(","))
    print(f"NumPy estimator: REGION {blur_kernel.REGION}, ITERATIONS {blur_kernel.ITERATIONS}")
    estimators = {f"baseline ({Path(args.baseline).name})": load_estimator(args.baseline)} if args.baseline else {}
    estimators["NumPy (blur_kernel.py)"] = blur_kernel.estimate_kernel
    if args.speed_frames:
        speed(estimators, args.speed_frames)
    if args.quality_frames:
        quality(estimators, args.quality_frames, args.seeds)


if __name__ == "__main__":
    main()
