"""`make bench` (and `make bench-smoke`): throughput and latency of the served task, side by side
with the same network in-process, on frames of a real clip.

One run starts its own tritonserver on free ports (on a repository built in --workdir) and does:
  1. side by side, over the same frames, in rounds (so every configuration sees the same
     background load): in-process ONNX Runtime, in-process PyTorch (first round), the served
     ensemble with 1 stream and with N streams (the clip split in N), and the full client file
     restore (decode -> server -> encode);
  2. perf_analyzer on `<task>_net` with real windows, concurrency 1..N, with and without dynamic
     batching, and on the decoupled ensemble with real frame sequences (--streaming --async),
     1..N streams, without and with system shared memory;
  3. scaling: frames/s and p50/p99 latency at 360p, 540p, 720p and 1080p.
Writes CSV files and PNG plots into --out and appends a markdown section to --results.
--smoke does all of it on 96x64 frames in tens of seconds and writes only into --workdir.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median

import numpy as np

from benchmarks.filerestore import file_restore_result, write_input
from benchmarks.frames import DEFAULT_CLIP, load_frames, parse_size
from benchmarks.inprocess import onnxruntime_result, pytorch_result, windows
from benchmarks.measure import Result, markdown_table, write_csv
from benchmarks.perf import perf_result, write_sequence_data, write_window_data
from benchmarks.plots import fps_vs_resolution, throughput_latency
from benchmarks.procstat import CpuMeter, machine
from benchmarks.repository import NOBATCH, prepare_repository
from benchmarks.stream import served_result
from client.local_server import TritonServer
from training.checkpoint import load_checkpoint
from training.contract import get_task
from training.network import gflops_per_frame

ROOT = Path(__file__).resolve().parents[1]
ORT = "in-process ONNX Runtime"
SERVED = "served ensemble"


@dataclass(frozen=True)
class Plan:
    """How much of everything one run measures."""

    size: tuple[int, int]                   # side-by-side and perf_analyzer resolution
    frames: int | None                      # frames of the clip (None: all of it)
    rounds: int                             # side-by-side rounds (medians are reported)
    streams: int                            # streams the side-by-side run splits the clip into
    perf_streams: int                       # perf_analyzer runs at concurrency 1 to this
    perf_requests: int                      # perf_analyzer requests per window (x3 windows) per stream
    scaling: tuple[tuple[str, int], ...]    # (resolution, frames) of the scaling table
    warmup: int                             # untimed in-process calls before timing
    perf_window_ms: int = 0                 # perf_analyzer windows of this many ms (0: of perf_requests requests)


FULL = Plan((640, 360), None, 3, 4, 4, 10, (("360p", 40), ("540p", 24), ("720p", 16), ("1080p", 8)), 10)
# One concurrency for perf_analyzer, in 250 ms windows: a window counting requests lasts at least a
# second, so each run took about 3 s however few requests it counted.
SMOKE = Plan((96, 64), 12, 1, 2, 1, 4, (("96x64", 8), ("128x96", 8)), 2, perf_window_ms=250)


def pick_median(results: list[Result]) -> list[Result]:
    """Per (configuration, concurrency), the round with the median frames/s."""
    groups: dict[tuple[str, int], list[Result]] = {}
    for r in results:
        groups.setdefault((r.config, r.concurrency), []).append(r)
    return [sorted(rs, key=lambda r: r.fps)[(len(rs) - 1) // 2] for rs in groups.values()]


def side_by_side(server: TritonServer, repository: Path, checkpoint: Path, task: str, frames: list[np.ndarray],
                 plan: Plan, workdir: Path) -> tuple[list[Result], dict[str, list[float]]]:
    """All rounds' results and, per round, the ratios the targets are about."""
    source = write_input(workdir / "clip.mkv", frames)
    split = [list(chunk) for chunk in np.array_split(np.arange(len(frames)), plan.streams)]
    results: list[Result] = []
    ratios: dict[str, list[float]] = {"served 1 stream / ONNX Runtime": [], f"served {plan.streams} streams / 1 stream": [],
                                      "client file restore / ONNX Runtime": [],
                                      "served 1 stream / ONNX Runtime, frames per CPU-second": []}
    for round_ in range(plan.rounds):
        ort = onnxruntime_result(repository, task, frames, plan.warmup)
        one = served_result(server.grpc_url, task, [frames], server.process.pid)
        many = served_result(server.grpc_url, task, [[frames[i] for i in idx] for idx in split], server.process.pid)
        restore = file_restore_result(server.grpc_url, task, source, workdir / "restored.mp4", len(frames), server.process.pid)
        results += [ort, one, many, restore]
        if round_ == 0:
            results.append(pytorch_result(checkpoint, repository, task, frames, plan.warmup))
        for name, value in zip(ratios, (one.fps / ort.fps, many.fps / one.fps, restore.fps / ort.fps,
                                        one.frames_per_core_s / ort.frames_per_core_s)):
            ratios[name].append(value)
        print(f"bench: round {round_ + 1}/{plan.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in ratios.items()), flush=True)
    return results, ratios


def perf_analyzer_runs(server: TritonServer, repository: Path, task: str, frames: list[np.ndarray], plan: Plan,
                       workdir: Path) -> list[Result]:
    """perf_analyzer on the network (with/without dynamic batching) and on the ensemble (with/without
    system shared memory), concurrency 1..plan.perf_streams."""
    spec = get_task(task)
    net_data = write_window_data(workdir / "windows.json", [w[0] for w in list(windows(repository, task, frames))[:8]])
    seq_data = write_sequence_data(workdir / "sequence.json", [frames])
    stream = ("--streaming", "--async")
    shm = ("--shared-memory", "system", "--output-shared-memory-size", str(frames[0].nbytes * spec.scale**2))
    runs = [(f"{spec.net_model}, dynamic batching", spec.net_model, net_data, ()),
            (f"{spec.net_model}, no batching", spec.net_model + NOBATCH, net_data, ()),
            (f"{task} ensemble (gRPC streaming)", task, seq_data, stream),
            (f"{task} ensemble (gRPC streaming, system shm)", task, seq_data, stream + shm)]
    results = []
    for config, model, data, extra in runs:
        for c in range(1, plan.perf_streams + 1):
            csv_path = workdir / "perf_analyzer" / f"{config.replace(' ', '_').replace(',', '')}_c{c}.csv"
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            results.append(perf_result(config, server, model, data, c, plan.perf_requests * c, frames[0], csv_path, extra,
                                       plan.perf_window_ms))
            r = results[-1]
            print(f"bench: perf_analyzer {config} c={c}: {r.fps:.2f} frames/s, p99 {r.p99_ms:.0f} ms", flush=True)
    return results


def scaling(server: TritonServer, repository: Path, task: str, plan: Plan) -> list[Result]:
    """In-process ONNX Runtime and the served ensemble (1 stream) at each resolution."""
    results = []
    for name, count in plan.scaling:
        frames = load_frames(parse_size(name), count)
        results += [onnxruntime_result(repository, task, frames, plan.warmup),
                    served_result(server.grpc_url, task, [frames], server.process.pid)]
        print(f"bench: {name}: ONNX Runtime {results[-2].fps:.2f}, served {results[-1].fps:.2f} frames/s", flush=True)
    return results


def verdicts(ratios: dict[str, list[float]]) -> list[str]:
    """One line per target (median over rounds, and each round), plus the CPU-efficiency ratio."""
    def line(name: str, target: float | None, unit: str = "") -> str:
        value, rounds = median(ratios[name]), ", ".join(f"{v:.2f}" for v in ratios[name])
        status = "" if target is None else f" (target >= {target:g}{unit}): **{'reached' if value >= target else 'NOT reached'}**"
        return f"- {name}: {value:.2f}{unit}{status} (per round: {rounds})"
    served, many, restore, efficiency = ratios
    return [line(served, 0.85), line(restore, 0.85), line(many, 1.5, "x"), line(efficiency, None)]


def report(args: argparse.Namespace, plan: Plan, frames: list[np.ndarray], checkpoint: Path, side: list[Result],
           ratios: dict[str, list[float]], perf: list[Result], scale: list[Result], plots: list[Path],
           training_cores: float, results_md: Path) -> str:
    """The markdown section appended to RESULTS.md."""
    net, _ = load_checkpoint(checkpoint)
    h, w = frames[0].shape[:2]
    medians = pick_median(side)
    baseline = next(r for r in medians if r.config == ORT)
    link = lambda p: os.path.relpath(p, results_md.parent)  # noqa: E731
    load = (f"a training job (`training.train`) ran concurrently and used {training_cores:.2f} cores on average"
            if training_cores > 0.05 else "no training job ran meanwhile")
    lines = [
        f"## {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, task `{args.task}`{' (smoke)' if args.smoke else ''}",
        "",
        f"- Command: `python -m benchmarks.run {' '.join(shlex.quote(a) for a in sys.argv[1:])}`",
        f"- Machine: {machine()}; {load}. CPU columns: cores in use during that measurement on the "
        f"whole machine, by tritonserver + stubs, by the benchmark process, by training.",
        f"- Network: {checkpoint.relative_to(ROOT) if checkpoint.is_relative_to(ROOT) else checkpoint} "
        f"({net.config}), {gflops_per_frame(net.config, h, w):.1f} GFLOP per {w}x{h} frame.",
        f"- Frames: {len(frames)} frames of {DEFAULT_CLIP} scaled to {w}x{h}; the served ensemble keeps at "
        f"most 4 frames per stream awaiting their final response; {plan.streams} streams = the clip split in {plan.streams}.",
        "",
        f"### Side by side, same frames ({plan.rounds} round(s); per configuration the round with the median frames/s; "
        f"the ratios below are per round, then their median)",
        "",
        markdown_table(medians, baseline),
        "",
        *verdicts(ratios),
        "",
        "### perf_analyzer (real windows / real frame sequences, one sequence per stream)",
        "",
        markdown_table(perf),
        "",
        "### Scaling (1 stream)",
        "",
        markdown_table(scale),
        "",
        *[f"![{p.stem}]({link(p)})" for p in plots],
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="denoise", help="task to benchmark (default: denoise)")
    parser.add_argument("--smoke", action="store_true",
                        help="96x64 frames, one round, concurrency 1..2: checks the benchmark code in tens of seconds; "
                             "writes only into --workdir")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint (default: training/checkpoints/<task>.pt)")
    parser.add_argument("--repository", type=Path,
                        help="an already-built repository to copy (its <task>_net holds the exported model); "
                             "default: export the checkpoint with export.engine into --workdir")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "bench",
                        help="scratch: repository copy, inputs, perf_analyzer CSVs, server log (default: build/bench)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="where CSV files and plots go (default: benchmarks/results; --smoke: --workdir)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md",
                        help="markdown file the section is appended to (default: benchmarks/RESULTS.md; "
                             "--smoke: <workdir>/RESULTS.md)")
    parser.add_argument("--frames", type=int, help="frames of the clip for side by side and perf_analyzer "
                                                   "(default: the whole clip, 132)")
    parser.add_argument("--rounds", type=int, help="side-by-side rounds (default 3)")
    args = parser.parse_args(argv)
    spec = get_task(args.task)
    if spec.masked:
        parser.error(f"--task {args.task}: masked tasks are not benchmarked yet (the frames carry no mask)")
    if spec.deconvolved:
        parser.error(f"--task {args.task}: its net also takes BLUR_KERNEL, which these baselines and perf_analyzer "
                     "inputs do not build yet; its speed is in `python -m benchmarks.quality --tasks deblur`")
    if args.smoke:
        args.out, args.results = args.workdir, args.workdir / "RESULTS.md"
    args.checkpoint = args.checkpoint or ROOT / "training" / "checkpoints" / f"{args.task}.pt"
    if not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if args.repository is not None and not (args.repository / args.task).is_dir():
        parser.error(f"--repository {args.repository}: no {args.task}/ model in it (omit it to export the checkpoint)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    plan = replace(plan, frames=args.frames or plan.frames, rounds=args.rounds or plan.rounds)
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M}"
    repository = prepare_repository(args.workdir / "repository", args.task, args.repository)
    frames = load_frames(plan.size, plan.frames)
    with CpuMeter() as whole, TritonServer(repository, args.workdir / "tritonserver.log") as server:
        print(f"bench: tritonserver on {server.grpc_url} (log {server.log_path}); {len(frames)} frames "
              f"{plan.size[0]}x{plan.size[1]}", flush=True)
        side, ratios = side_by_side(server, repository, args.checkpoint, args.task, frames, plan, args.workdir)
        perf = perf_analyzer_runs(server, repository, args.task, frames, plan, args.workdir)
        scale = scaling(server, repository, args.task, plan)
    prefix = "smoke" if args.smoke else f"{args.task}_{stamp}"
    write_csv(args.out / f"{prefix}_side_by_side.csv", side)
    write_csv(args.out / f"{prefix}_perf_analyzer.csv", perf)
    write_csv(args.out / f"{prefix}_scaling.csv", scale)
    plots = [throughput_latency(perf + pick_median(side)[:3], args.out / f"{prefix}_throughput_latency.png",
                                f"{args.task}: frames/s vs p99 latency ({plan.size[0]}x{plan.size[1]})"),
             fps_vs_resolution(scale, args.out / f"{prefix}_fps_vs_resolution.png", f"{args.task}: frames/s vs resolution")]
    section = report(args, plan, frames, args.checkpoint, side, ratios, perf, scale, plots, whole.use.training_cores, args.results)
    with open(args.results, "a") as out:
        out.write("\n" + section)
    print(section)
    print(f"bench: appended to {args.results}; CSV and plots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
