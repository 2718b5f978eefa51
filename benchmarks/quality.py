"""Quality benchmark (`make bench-quality`): restore the held-out validation clip per task and
print PSNR/SSIM of the degraded input, classical baselines and our networks as a markdown table.

    python -m benchmarks.quality                      # every task with a shipped checkpoint
    python -m benchmarks.quality --tasks denoise --count 4
    python -m benchmarks.quality --compare t1=runs/t1.pt       # extra denoise rows (e.g. T=1)
    python -m benchmarks.quality --speed tiny=a.pt default=training/checkpoints/denoise.pt
    python -m benchmarks.quality --url 127.0.0.1:8001  # also the served <task>_net (tritonclient)

Baselines, each at the strongest its parameters allow (tuned against the clean frames, an oracle
no user has): OpenCV fastNlMeansDenoisingColored (1 frame) and ...ColoredMulti (5 frames) over a
grid of strengths h; unsharp masking over radius x amount; bicubic and Lanczos upscaling (sr4).
For deblur also the blind Wiener deconvolution that the deblur network runs on its window first
(training/blur_kernel.py's estimate, training/deconvolution.py's filter), alone, untuned.
Frames and degradations are those of training/evaluate.py (fixed seeds, bikes.mp4 held out).
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from export.onnx_cache import CACHE
from training.checkpoint import load_checkpoint
from training.contract import RESTORED, get_task, net_inputs
from training.data import VALIDATION_CLIP
from training.blur_kernel import estimate_kernel
from training.deconvolution import NSR, WienerDeconvolution
from training.evaluate import FIXED_DEGRADATION_TASKS, ValidationSet, network_planes, psnr, restore, ssim, validation_set
from training.network import NetConfig, VideoRestorationNet, count_parameters, gflops_per_frame

Row = tuple[str, float, float, str]  # method, PSNR, SSIM, note


# ---- classical baselines: window (T, H, W, 3) uint8 RGB -> restored centre frame ----

def nlm(window: np.ndarray, h: float, frames: int) -> np.ndarray:
    """OpenCV non-local means over the centre frame (frames=1) or the centre `frames` frames."""
    c = len(window) // 2
    if frames == 1:
        return cv2.fastNlMeansDenoisingColored(window[c], None, h, h, 7, 21)
    lo = c - frames // 2
    return cv2.fastNlMeansDenoisingColoredMulti(list(window[lo : lo + frames]), frames // 2, frames, None, h, h, 7, 21)


def unsharp(window: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    """Unsharp masking of the centre frame: x + amount * (x - gaussian_blur(x, sigma))."""
    x = window[len(window) // 2].astype(np.float32)
    blurred = cv2.GaussianBlur(x, (0, 0), sigma)
    return np.clip(np.rint(x + amount * (x - blurred)), 0, 255).astype(np.uint8)


def upscale(window: np.ndarray, interpolation: int) -> np.ndarray:
    """The centre frame upscaled x4 with an OpenCV interpolation (bicubic, Lanczos)."""
    x = np.ascontiguousarray(window[len(window) // 2])  # OpenCV refuses strided views
    return cv2.resize(x, (x.shape[1] * 4, x.shape[0] * 4), interpolation=interpolation)


def apply(method: Callable[[np.ndarray], np.ndarray], val: ValidationSet) -> np.ndarray:
    return np.stack([method(w) for w in val.windows])


def tuned(name: str, make: Callable[..., Callable[[np.ndarray], np.ndarray]], grid: list[tuple], val: ValidationSet) -> Row:
    """The best PSNR of `make(*params)` over `grid`, scored against the clean frames."""
    best = None
    for params in grid:
        out = apply(make(*params), val)
        score = psnr(out, val.targets)
        if best is None or score > best[0]:
            best = (score, params, out)
    score, params, out = best
    return name, score, ssim(out, val.targets), f"tuned: {params} of {len(grid)} settings"


def baseline_rows(task: str, val: ValidationSet, sigma: float) -> list[Row]:
    """The degraded input and the tuned classical baselines for `task`."""
    rows: list[Row] = []
    if task in ("denoise", "deblock", "deblur"):
        centre = val.windows[:, val.windows.shape[1] // 2]
        rows.append(("degraded input", psnr(centre, val.targets), ssim(centre, val.targets), ""))
    if task in ("denoise", "deblur"):
        # NLM strength around the noise level (denoise) or small (deblur: only its noise to remove).
        hs = [0.4, 0.6, 0.8, 1.0, 1.3] if task == "denoise" else [1 / 25, 2 / 25, 4 / 25]
        grid = [(round(sigma * k, 1),) for k in hs]
        rows.append(tuned("OpenCV NLM, 1 frame", lambda h: lambda w: nlm(w, h, 1), grid, val))
        rows.append(tuned("OpenCV NLM, 5 frames", lambda h: lambda w: nlm(w, h, 5), grid, val))
    if task == "deblur":
        grid = [(s, a) for s in (1.0, 2.0, 3.0) for a in (0.5, 1.0, 1.5, 2.5)]
        rows.append(tuned("unsharp masking", lambda s, a: lambda w: unsharp(w, s, a), grid, val))
        # The classical half of our deblur pipeline alone: what the network deconvolves its window to.
        out = np.stack([blind_wiener(w[len(w) // 2]) for w in val.windows])
        rows.append(("blind Wiener deconvolution (training/deconvolution.py, no network)", psnr(out, val.targets),
                     ssim(out, val.targets), f"kernel estimated per frame, NSR {NSR}"))
    if task == "sr4":
        for name, interp in (("bicubic x4", cv2.INTER_CUBIC), ("Lanczos x4", cv2.INTER_LANCZOS4)):
            out = apply(lambda w: upscale(w, interp), val)
            rows.append((name, psnr(out, val.targets), ssim(out, val.targets), "OpenCV resize"))
    return rows


def blind_wiener(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) deconvolved by its own estimated kernel, as the deblur graph does first."""
    planes = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        out = WienerDeconvolution()(planes, torch.from_numpy(estimate_kernel(frame))[None])
    return (out[0].permute(1, 2, 0) * 255.0).round().byte().numpy()


def network_row(label: str, net: VideoRestorationNet, val: ValidationSet) -> tuple[Row, np.ndarray]:
    out = restore(net, val.windows)
    note = f"T={net.config.frames}, {count_parameters(net) / 1e3:.0f}k params"
    return (label, psnr(out, val.targets), ssim(out, val.targets), note), out


def served_restore(url: str, task: str, windows: np.ndarray, config: NetConfig,
                   masks: np.ndarray | None = None) -> np.ndarray:
    """The same windows [and inpainting masks] through the served `<task>_net` (unary gRPC infer,
    one window a request), each first aligned or deconvolved as the window model does for a
    network of `config`."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    specs = net_inputs(config.input_frames, config.masked, config.deconvolved)
    out = []
    for planes in zip(*network_planes(config, windows, masks)):
        inputs = []
        for (name, spec), plane in zip(specs.items(), planes):
            inputs.append(grpcclient.InferInput(name, [1, *plane.shape], spec.dtype))
            inputs[-1].set_data_from_numpy(np.ascontiguousarray(plane[None]))
        result = client.infer(f"{task}_net", inputs, outputs=[grpcclient.InferRequestedOutput(RESTORED)])
        out.append(result.as_numpy(RESTORED)[0])
    return np.stack(out)


# ---- speed: ONNX Runtime frames/s at 640x360 ----

def timing_feed(c: NetConfig, height: int, width: int) -> dict[str, np.ndarray]:
    """One batch-1 input per graph input of a network with config `c`, for timing at height x
    width: random frames and masks (a network's cost does not depend on the pixels), and deblur's
    kernel as estimated on the real window the export starts from."""
    from export.onnx_export import parity_cases
    from export.samples import DEFAULT_CLIP, read_window, sample_clip

    specs = net_inputs(c.input_frames, c.masked, c.deconvolved)
    example = parity_cases(read_window(sample_clip(DEFAULT_CLIP), c.input_frames), list(specs))[0]
    rng = np.random.default_rng(0)
    return {name: rng.integers(0, 256, spec.shape(1, height, width), dtype=np.uint8) if spec.dtype == "UINT8"
            else example[name] for name, spec in specs.items()}


def warmup_calls(calls: int) -> int:
    """Untimed calls before `calls` timed ones: half as many (the first calls in a fresh session
    are about 2x slow), at least one."""
    return max(1, calls // 2)


def onnx_frames_per_second(checkpoint: Path, task: str = "denoise", height: int = 360, width: int = 640,
                           warmup: int | None = None, calls: int = 20, cache: Path | None = CACHE) -> float:
    """Export `checkpoint` as `make engine` does (export/engine.py: the same export and parity
    check, reused from `cache` while checkpoint and graph source are unchanged) and time batch-1
    calls in ONNX Runtime after `warmup` calls (default `warmup_calls(calls)`)."""
    import onnxruntime as ort

    from export.engine import ensure_onnx

    c = load_checkpoint(checkpoint)[0].config
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        ensure_onnx(checkpoint, path, get_task(task), cache=cache)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = timing_feed(c, height, width)
    for _ in range(warmup_calls(calls) if warmup is None else warmup):
        session.run(None, feed)
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, feed)
    return calls / (time.perf_counter() - start)


def seconds_per_call(prepare: Callable[[np.ndarray], object], window: np.ndarray, height: int = 360,
                     width: int = 640, calls: int = 10) -> float:
    """Seconds per `prepare(window)` call (the window model's kernel estimate) on
    `window` (a real degraded window) resized to height x width."""
    frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in window])
    prepare(frames)  # warm-up
    start = time.perf_counter()
    for _ in range(calls):
        prepare(frames)
    return (time.perf_counter() - start) / calls


def speed_table(entries: list[tuple[str, Path]], val: ValidationSet, calls: int = 20) -> list[str]:
    lines = ["| network | config | params | GFLOPs/frame @640x360 | PSNR sigma=25 (dB) | frames/s ONNX Runtime @640x360 "
             "| trained |",
             "|---|---|---|---|---|---|---|"]
    for label, path in entries:
        net, extra = load_checkpoint(path)
        c = net.config
        (_, p, _, _), _ = network_row(label, net, val)
        fps = onnx_frames_per_second(path, calls=calls)
        shape = f"T={c.frames} C={c.channels} Cf={c.frame_channels} blocks={c.frame_blocks}+{c.fusion_blocks} r={c.unshuffle}"
        shape += f" U-Net {c.levels}x{c.level_blocks}" if c.levels else ""
        shape += " aligned" if c.aligned else ""
        shape += f" refine {c.refine_channels}" if c.refine_channels else ""
        trained = f"{extra.get('step', '?')} steps, {extra.get('wall_time_s', extra.get('elapsed', float('nan'))) / 60:.0f} min"
        lines.append(f"| {label} | {shape} | {count_parameters(net) / 1e3:.0f}k | {gflops_per_frame(c, 360, 640):.1f} "
                     f"| {p:.2f} | {fps:.1f} | {trained} |")
    return lines


def format_rows(title: str, rows: list[Row]) -> list[str]:
    lines = [f"\n**{title}**\n", "| method | PSNR (dB) | SSIM | note |", "|---|---|---|---|"]
    lines += [f"| {m} | {p:.2f} | {s:.4f} | {n} |" for m, p, s, n in rows]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=None,
                        help="tasks to benchmark (default: every training/checkpoints/<task>.pt of denoise, deblur, "
                        "sr4; none: only the --speed table)")
    parser.add_argument("--checkpoints", default="training/checkpoints", help="folder with <task>.pt")
    parser.add_argument("--count", type=int, default=6, help="validation windows, evenly spaced over the clip")
    parser.add_argument("--crop", type=int, default=0, help="centre crop of the frames (0 = full frame)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[10, 25, 50], help="denoise noise levels")
    parser.add_argument("--compare", nargs="*", default=[], metavar="LABEL=CKPT",
                        help="extra denoise networks shown in the sigma=25 table (e.g. the T=1 ablation)")
    parser.add_argument("--speed", nargs="*", default=[], metavar="LABEL=CKPT",
                        help="denoise checkpoints for the speed/quality trade-off table")
    parser.add_argument("--speed-calls", type=int, default=20,
                        help="timed calls per speed figure (ONNX Runtime: after half as many warm-up calls; "
                        "deblur's kernel estimate: after one)")
    parser.add_argument("--url", default="", help="also restore through the served <task>_net at this gRPC URL "
                        "and report the largest difference from in-process (needs a running server)")
    parser.add_argument("--out", default="", help="also write the markdown tables to this file")
    args = parser.parse_args(argv)

    tasks = args.tasks if args.tasks is not None else [t for t in FIXED_DEGRADATION_TASKS if (Path(args.checkpoints) / f"{t}.pt").is_file()]
    crop = args.crop or None
    lines = [f"Validation clip {VALIDATION_CLIP} (held out), {args.count} windows, "
             f"{'full frame' if crop is None else f'{crop}x{crop} centre crop'}; "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
             f"`python -m benchmarks.quality {' '.join(sys.argv[1:] if argv is None else argv)}`"]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for task in tasks:
        ckpt = Path(args.checkpoints) / f"{task}.pt"
        net, _ = load_checkpoint(ckpt)
        for sigma in args.sigmas if task == "denoise" else [25.0]:
            val = validation_set(task, 5, args.count, crop, sigma)
            rows = baseline_rows(task, val, sigma)
            row, ours = network_row(f"ours ({ckpt})", net, val)
            rows.append(row)
            if task == "denoise" and sigma == 25:
                rows += [network_row(label, load_checkpoint(path)[0], val)[0]
                         for label, path in (c.split("=", 1) for c in args.compare)]
            if args.url:
                served = served_restore(args.url, task, val.windows, net.config)
                diff = int(np.abs(served.astype(int) - ours.astype(int)).max())
                rows.append((f"ours, served ({args.url})", psnr(served, val.targets), ssim(served, val.targets),
                             f"max |served - in-process| = {diff} grey levels"))
            title = f"{task}" + (f", Gaussian sigma={sigma:g}" if task == "denoise" else "")
            lines += format_rows(title, rows)
            print("\n".join(format_rows(title, rows)), flush=True)
        if net.config.deconvolved:
            fps = onnx_frames_per_second(ckpt, task, calls=args.speed_calls)
            estimate = seconds_per_call(lambda w: estimate_kernel(w[len(w) // 2]), val.windows[0],
                                        calls=args.speed_calls)
            speed = (f"\n{task} speed at 640x360, in-process, batch 1: network (deconvolution included) {fps:.1f} "
                     f"frames/s in ONNX Runtime; the window model's kernel estimate {estimate * 1e3:.0f} ms per window; "
                     f"both one after the other {1 / (1 / fps + estimate):.1f} frames/s")
            lines.append(speed)
            print(speed, flush=True)
    if args.speed:
        val = validation_set("denoise", 5, args.count, crop, 25.0)
        table = speed_table([(label, Path(path)) for label, path in (s.split("=", 1) for s in args.speed)], val,
                            args.speed_calls)
        # Other work on a shared machine slows ONNX Runtime: say how busy it was.
        load = os.getloadavg()[0]
        lines += [f"\n**speed / quality (denoise)**: ONNX Runtime CPU, batch 1, "
                  f"{warmup_calls(args.speed_calls)} warm-up calls then {args.speed_calls} timed; "
                  f"1-min load average {load:.1f} at the end\n", *table]
        print("\n".join(table))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
