"""Inpainting quality benchmark: PSNR inside the mask on the held-out validation clip.

    python -m benchmarks.inpaint_quality                          # shipped checkpoint, 8 windows
    python -m benchmarks.inpaint_quality --url 127.0.0.1:8001     # also the served inpaint_net
    python -m benchmarks.inpaint_quality --out benchmarks/results_inpaint.md

Frames and masks are those of training/evaluate.py: `count` windows of bikes.mp4 (never trained
on), masks from training/masks.py seeded by the centre frame index, as long as the inpaint window
model holds (training/contract.py: the network's graph propagates from all 21 into the centre,
then its body takes the centre 5).
Methods, each filling the centre frame's mask:
  OpenCV Telea / Navier-Stokes  cv2.inpaint on the centre frame alone; the radius is tuned against
                                the clean frames (an oracle no user has), so the baseline is at its best.
  temporal median               per hidden pixel, the median of the same pixel over the window's
                                other frames where it is not hidden; pixels hidden in every frame
                                fall back to Telea (the better classical fill).
  ours                          the inpaint network: flow-guided propagation (training/propagation.py)
                                inside its graph, then its body; in-process (ServingNet, as exported)
                                and, with --url, the windows served by Triton (inpaint_net, unary
                                gRPC); also the same weights on the centre 5 frames alone (no propagation).
PSNR is over the hidden pixels only (the rest is returned bit-exact by every method), split into
pixels visible in some other frame of the window (at the same place) and pixels hidden in all T. --by-distance adds
a second table: PSNR by a hidden pixel's distance to the nearest known pixel of its frame, which
shows whether the error sits at the holes' edges or deep inside them.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from training.checkpoint import load_checkpoint
from benchmarks.quality import served_restore
from training.contract import get_task
from training.data import VALIDATION_CLIP
from training.evaluate import ValidationSet, masked_psnr, restore, validation_set
from training.network import VideoRestorationNet
from training.processing import window_to_network
from training.propagation import propagate_centre

Fill = Callable[[np.ndarray, np.ndarray], np.ndarray]  # window (T,H,W,3), masks (T,H,W,1) -> centre (H,W,3)


def opencv_fill(flags: int, radius: float) -> Fill:
    """cv2.inpaint of the centre frame with `flags` (INPAINT_TELEA or INPAINT_NS)."""
    def fill(window: np.ndarray, masks: np.ndarray) -> np.ndarray:
        c = len(window) // 2
        return cv2.inpaint(np.ascontiguousarray(window[c]), np.ascontiguousarray(masks[c, ..., 0]), radius, flags)
    return fill


def temporal_median_fill(fallback: Fill) -> Fill:
    """Median over the other frames where the pixel is visible; `fallback` where it never is."""
    def fill(window: np.ndarray, masks: np.ndarray) -> np.ndarray:
        c = len(window) // 2
        others = np.delete(np.arange(len(window)), c)
        values = np.where(masks[others] == 0, window[others].astype(np.float32), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: the fallback fills them
            median = np.nanmedian(values, axis=0)
        out = fallback(window, masks)
        use = (masks[c] != 0) & ~np.isnan(median)
        use = np.broadcast_to(use, out.shape)
        out[use] = np.rint(median[use]).astype(np.uint8)
        return out
    return fill


def scores(restored: np.ndarray, val: ValidationSet) -> tuple[float, float, float]:
    """PSNR inside the centre masks: all hidden pixels, those visible in a neighbour, those never visible."""
    centre = val.masks[:, val.masks.shape[1] // 2]
    never = np.all(val.masks != 0, axis=1)
    seen_elsewhere = (centre != 0) & ~never
    return (masked_psnr(restored, val.targets, centre), masked_psnr(restored, val.targets, seen_elsewhere),
            masked_psnr(restored, val.targets, never))


def apply(fill: Fill, val: ValidationSet) -> np.ndarray:
    return np.stack([fill(w, m) for w, m in zip(val.windows, val.masks)])


def tuned_opencv(name: str, flags: int, val: ValidationSet, radii=(1, 3, 5, 9)) -> tuple[str, Fill, str]:
    """The radius with the best PSNR inside the mask (oracle tuning)."""
    best = max(radii, key=lambda r: scores(apply(opencv_fill(flags, r), val), val)[0])
    return name, opencv_fill(flags, best), f"radius {best} (best of {list(radii)})"


def methods(val: ValidationSet, checkpoint: Path, url: str) -> list[tuple[str, np.ndarray, str]]:
    """(name, restored centre frames, note) for every method of the benchmark."""
    telea = tuned_opencv("OpenCV Telea (1 frame)", cv2.INPAINT_TELEA, val)
    ns = tuned_opencv("OpenCV Navier-Stokes (1 frame)", cv2.INPAINT_NS, val)
    rows = [(name, apply(fill, val), note) for name, fill, note in (telea, ns)]
    t = val.windows.shape[1]
    rows.append((f"temporal median ({t} frames)", apply(temporal_median_fill(telea[1]), val),
                 f"Telea where hidden in all {t} frames"))
    net, extra = load_checkpoint(checkpoint)
    alone = without_propagation(net)
    rows.append((f"ours, network alone ({alone.config.frames} frames)", restore(alone, val.windows, masks=val.masks),
                 f"step {extra.get('step', '?')}"))
    ours = restore(net, val.windows, masks=val.masks)
    share, seconds = propagation_stats(val)
    rows.append((f"ours: propagation ({t} frames) + network ({checkpoint})", ours,
                 f"{share:.0%} of the hidden pixels propagated; propagation {seconds * 1000:.0f} ms per window "
                 f"(PyTorch, in the network's graph when served)"))
    if url:
        served = served_restore(url, "inpaint", val.windows, net.config, val.masks)
        diff = int(np.abs(served.astype(int) - ours.astype(int)).max())
        rows.append((f"ours, served by Triton ({url})", served, f"largest difference from in-process: {diff} grey level(s)"))
    return rows


def without_propagation(net: VideoRestorationNet) -> VideoRestorationNet:
    """The same weights taking only the centre `frames` (propagation has no weights of its own)."""
    alone = VideoRestorationNet(dataclasses.replace(net.config, propagation_frames=0))
    alone.load_state_dict(net.state_dict())
    return alone.eval()


@torch.no_grad()
def propagation_stats(val: ValidationSet) -> tuple[float, float]:
    """(share of the centre frames' hidden pixels that propagation fills, the rest being the
    network's; seconds per window for the propagation, in PyTorch)."""
    seconds, left = 0.0, 0
    for window, masks in zip(val.windows, val.masks):
        frames, hidden = (window_to_network(torch.from_numpy(p[None])) for p in (window, masks))
        start = time.perf_counter()
        left += int(torch.count_nonzero(propagate_centre(frames, (hidden > 0.5).float())[1]))
        seconds += time.perf_counter() - start
    k, t = val.windows.shape[:2]
    return 1 - left / np.count_nonzero(val.masks[:, t // 2]), seconds / k


def table(rows: list[tuple[str, np.ndarray, str]], val: ValidationSet) -> list[str]:
    t = val.masks.shape[1]
    lines = [f"| method | PSNR in mask (dB) | visible in another frame | hidden in all {t} frames | note |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {a:.2f} | {b:.2f} | {c:.2f} | {note} |"
              for name, out, note in rows for a, b, c in [scores(out, val)]]
    return lines


DISTANCE_BINS = (0, 2, 4, 8, 12, 16, 24, 10**6)


def distance_table(rows: list[tuple[str, np.ndarray, str]], val: ValidationSet) -> list[str]:
    """PSNR per bin of distance (px, L2) from a hidden centre pixel to the nearest known one."""
    centre = val.masks[:, val.masks.shape[1] // 2]
    distance = np.stack([cv2.distanceTransform((m[..., 0] != 0).astype(np.uint8), cv2.DIST_L2, 5)
                         for m in centre])[..., None]
    lines = ["| distance from the hole's edge (px) | share of hidden pixels | " + " | ".join(n for n, _, _ in rows) + " |",
             "|---|---|" + "---|" * len(rows)]
    for low, high in zip(DISTANCE_BINS, DISTANCE_BINS[1:]):
        inside = (centre != 0) & (distance > low) & (distance <= high)
        if inside.any():
            psnrs = " | ".join(f"{masked_psnr(out, val.targets, inside):.2f}" for _, out, _ in rows)
            upper = f"{high}" if high < DISTANCE_BINS[-1] else "more"
            lines.append(f"| {low}-{upper} | {inside.sum() / (centre != 0).sum():.1%} | {psnrs} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inpaint_quality", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default="training/checkpoints/inpaint.pt")
    parser.add_argument("--count", type=int, default=8, help="validation windows, evenly spaced over the clip")
    parser.add_argument("--crop", type=int, default=0, help="centre crop of the frames (0 = full frame)")
    parser.add_argument("--url", default="", help="also restore through the served inpaint_net at this gRPC URL")
    parser.add_argument("--by-distance", action="store_true",
                        help="also print PSNR by distance from the hole's edge (0-2 px, 2-4, ... 24 and more)")
    parser.add_argument("--out", default="", help="also write the markdown table(s) to this file")
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    frames = get_task("inpaint").window
    val = validation_set("inpaint", frames, args.count, args.crop or None)
    centre = val.masks[:, frames // 2] != 0
    never = np.all(val.masks != 0, axis=1)
    header = (f"Validation clip {VALIDATION_CLIP} (held out), {args.count} windows of {frames} frames of "
              f"{val.windows.shape[3]}x{val.windows.shape[2]}, masks seeded by the centre frame index; "
              f"{centre.mean():.1%} of the centre pixels hidden, {never.sum() / centre.sum():.0%} of those "
              f"hidden in all {frames} frames; "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
              f"`python -m benchmarks.inpaint_quality {' '.join(sys.argv[1:] if argv is None else argv)}`".rstrip())
    rows = methods(val, Path(args.checkpoint), args.url)
    lines = [header, "", *table(rows, val)]
    if args.by_distance:
        lines += ["", *distance_table(rows, val)]
    print("\n".join(lines), flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
