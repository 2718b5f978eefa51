"""CPU time per frame of the window model's pure windowing code (windowing.py's StreamTable:
hold each frame, hand out each window) on one stream, at 1080p by default. This is what every
frame costs the window model's one Python process before a response is built, so it bounds how
many frames/s one server can window.

    python -m benchmarks.windowing_cpu [--repository model_repository] [--window 5] [--frames 300] [--send]
                                       [--masks {none,grey,packed}]

Frames come from a small pool of distinct random frames, as if each arrived in new memory;
only the StreamTable calls are timed (process CPU time, all threads), plus with --send one copy
of each window, as building its response copies it into the backend's shared memory. With
--masks each frame brings an inpainting mask (a random box, 255 = fill), held as it came
("grey": one byte per pixel) or as the window model holds it ("packed": checked and bit-packed
by `held_planes`, 8 pixels per byte, its cost timed too).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from export.repository import REPOSITORY, load_model_code


MASKS = ("none", "grey", "packed")


def random_box_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 1): 255 in a random box of up to a quarter of each side, 0 elsewhere."""
    mask = np.zeros((height, width, 1), np.uint8)
    h, w = (int(rng.integers(1, max(2, side // 4))) for side in (height, width))
    y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    mask[y : y + h, x : x + w] = 255
    return mask


def cpu_ms_per_frame(repository: Path, window: int, frames: int, height: int, width: int, send: bool = False,
                     masks: str = "none") -> float:
    if masks not in MASKS:
        raise ValueError(f"masks must be one of {MASKS}, got {masks!r}")
    windowing = load_model_code("denoise_window", "windowing", repository)
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(8)]
    mask_pool = [random_box_mask(height, width, rng) for _ in range(8)]
    table = windowing.StreamTable(window, 60.0)
    emitted = 0
    start = time.process_time()
    for i in range(frames):
        planes = (pool[i % len(pool)],) if masks == "none" else (pool[i % len(pool)], mask_pool[i % len(pool)])
        if masks == "packed":
            planes = windowing.held_planes(1, planes)
        for w in table.handle(1, i == 0, i == frames - 1, planes):
            emitted += 1
            if send:
                for plane in w.planes:
                    np.array(plane[np.newaxis])
    seconds = time.process_time() - start
    assert emitted == frames, f"{emitted} windows for {frames} frames"
    return 1000 * seconds / frames


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.windowing_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=Path, default=REPOSITORY, help="repository whose denoise_window/1/windowing.py to time")
    parser.add_argument("--window", type=int, default=5, help="frames held per stream (5; inpaint holds 21)")
    parser.add_argument("--frames", type=int, default=300, help="frames streamed")
    parser.add_argument("--send", action="store_true", help="also copy each window once, as its response does")
    parser.add_argument("--masks", choices=MASKS, default="none",
                        help="with an inpainting mask per frame, held grey (1 byte per pixel) or bit-packed as "
                             "the window model holds it (default: none)")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    args = parser.parse_args(argv)
    ms = cpu_ms_per_frame(args.repository, args.window, args.frames, args.height, args.width, args.send, args.masks)
    masks = "" if args.masks == "none" else f", masks {args.masks}"
    print(f"windowing{' + response copy' if args.send else ''}: {ms:.1f} ms CPU per {args.width}x{args.height} "
          f"frame, window {args.window}{masks}, {args.frames} frames ({args.repository / 'denoise_window/1/windowing.py'})")


if __name__ == "__main__":
    main()
