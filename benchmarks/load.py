"""Load: N concurrent clients streaming N different clips through one server,
round after round, for a duration. Checked every round: each stream gets back exactly its
input's frame count, each frame once, and no frame from another stream (every restored frame is
closest to its own input among all streams' frames at that index). Server memory (VmRSS of
tritonserver + its stub processes) is sampled after every round: it must stay flat after the
warm-up (growth < 5%). p50/p99 frame latency over all measured rounds.

The warm-up is long on purpose: with clips of several sizes, dynamic batching forms new batch
compositions for a while, and ONNX Runtime's memory arena in the net stub grows to its peak
(measured: 356 -> ~800 MiB) and the server's shared-memory pool to its own only after a few
minutes; a 1-round warm-up reported +110% that was this, not a leak. `--cpu-memory-arena false`
turns the arena off (memory is given back after each call), but glibc's heaps in the net stub
still step up for a while (measured 2026-12-06), so the warm-up stays long. The window model's
RSS is also reported alone: it holds every stream's frames, so a stream it fails to drop shows
there first (the bounded test in tests/test_bench.py checks that).

    python -m benchmarks.load --clients 4 --duration 600     # the 10-minute version
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.frames import fit_size, load_frames
from benchmarks.procstat import CpuMeter, machine, process_tree, rss_kib, stub_pids
from benchmarks.repository import prepare_repository
from benchmarks.stream import StreamOutcome, run_streams, thumbnail
from client.local_server import TritonServer
from export.triton_config import update_parameters
from training.contract import get_task

ROOT = Path(__file__).resolve().parents[1]
# Different real files of different sizes: a frame sent to the wrong stream cannot look right.
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")
MAX_GROWTH = 0.05


def load_clips(count: int, frames: int, max_size: tuple[int, int]) -> list[list[np.ndarray]]:
    """`count` different clips of `frames` frames, each scaled to fit `max_size`; past the four
    shipped clips, later stretches of the same files."""
    clips = []
    for i in range(count):
        name = CLIPS[i % len(CLIPS)]
        clips.append(load_frames(fit_size(name, max_size), frames, name, start=(i // len(CLIPS)) * frames))
    return clips


def stream_problems(clips: list[list[np.ndarray]], outcomes: list[StreamOutcome]) -> list[str]:
    """Everything wrong with one round's outcomes (empty when every stream came back right)."""
    thumbs = [[thumbnail(f).astype(np.int16) for f in clip] for clip in clips]
    problems = []
    for s, (clip, outcome) in enumerate(zip(clips, outcomes)):
        tag = f"stream {s} (sequence {outcome.sequence_id})"
        problems += [f"{tag}: {e}" for e in outcome.errors[:3]]
        if sorted(outcome.thumbnails) != list(range(len(clip))):
            problems.append(f"{tag}: got {len(outcome.thumbnails)} distinct frames for {len(clip)} sent")
        if outcome.duplicates:
            problems.append(f"{tag}: frames {outcome.duplicates[:5]} came more than once")
        for index, got in outcome.thumbnails.items():
            if got.shape != thumbs[s][min(index, len(clip) - 1)].shape:
                problems.append(f"{tag}: frame {index} has shape {got.shape}, its input {thumbs[s][0].shape}")
                continue
            diffs = {o: np.abs(got.astype(np.int16) - thumbs[o][index]).mean()
                     for o in range(len(clips)) if index < len(clips[o]) and thumbs[o][index].shape == got.shape}
            if min(diffs, key=diffs.get) != s:
                problems.append(f"{tag}: frame {index} looks like stream {min(diffs, key=diffs.get)}'s")
    return problems


@dataclass
class LoadReport:
    """What a load run saw; `ok` when nothing went wrong and memory stayed flat."""

    clients: int
    rounds: int = 0
    frames: int = 0
    seconds: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)   # after each round, warm-up rounds included
    window_rss_kib: list[int] = field(default_factory=list)  # the same, window-model stubs alone
    warmup_rounds: int = 1
    problems: list[str] = field(default_factory=list)

    def _growth(self, rss_kib: list[int]) -> float:
        base = rss_kib[self.warmup_rounds - 1]
        return max(rss_kib[self.warmup_rounds - 1:]) / base - 1

    @property
    def growth(self) -> float:
        """Largest server RSS after warm-up relative to the RSS right after warm-up."""
        return self._growth(self.rss_kib)

    @property
    def window_growth(self) -> float:
        """The same for the window-model stubs alone, which hold every stream's frames."""
        return self._growth(self.window_rss_kib)

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies_s) * 1e3, q))

    @property
    def ok(self) -> bool:
        return not self.problems and self.growth < MAX_GROWTH

    def summary(self) -> str:
        return (f"{self.clients} clients, {self.rounds} measured rounds, {self.frames} frames in {self.seconds:.0f} s "
                f"({self.frames / self.seconds:.2f} frames/s); latency p50 {self.percentile_ms(50):.0f} ms, "
                f"p99 {self.percentile_ms(99):.0f} ms; server RSS {self.rss_kib[self.warmup_rounds - 1] / 1024:.0f} MiB "
                f"after warm-up -> max {max(self.rss_kib[self.warmup_rounds - 1:]) / 1024:.0f} MiB "
                f"({100 * self.growth:+.1f}%, limit {100 * MAX_GROWTH:g}%), of which the window model "
                f"{self.window_rss_kib[self.warmup_rounds - 1] / 1024:.0f} -> {max(self.window_rss_kib[self.warmup_rounds - 1:]) / 1024:.0f} MiB "
                f"({100 * self.window_growth:+.1f}%); problems: {len(self.problems)}")


def run_load(url: str, server_pid: int, clips: list[list[np.ndarray]], model: str = "denoise",
             rounds: int | None = None, duration_s: float | None = None, warmup_rounds: int = 1,
             warmup_s: float = 0.0, max_in_flight: int = 4) -> LoadReport:
    """Warm-up rounds (at least `warmup_rounds`, and for at least `warmup_s`), then measured
    rounds until `rounds` are done or `duration_s` has passed (at least one)."""
    report = LoadReport(len(clips), warmup_rounds=0)
    window_model = get_task(model).window_model

    def sample() -> None:  # stubs may be restarted: look for them again each time
        tree = process_tree(server_pid)
        report.rss_kib.append(rss_kib(tree))
        report.window_rss_kib.append(rss_kib(stub_pids(tree, window_model)))
    start = time.monotonic()
    while report.warmup_rounds < warmup_rounds or time.monotonic() - start < warmup_s:
        outcomes, _ = run_streams(url, model, clips, max_in_flight)
        report.problems += stream_problems(clips, outcomes)
        sample()
        report.warmup_rounds += 1
    start = time.monotonic()
    while True:
        outcomes, seconds = run_streams(url, model, clips, max_in_flight)
        report.problems += stream_problems(clips, outcomes)
        sample()
        report.rounds += 1
        report.seconds += seconds
        report.frames += sum(len(o.thumbnails) for o in outcomes)
        report.latencies_s += [s for o in outcomes for s in o.latencies_s]
        if (rounds is not None and report.rounds >= rounds) or \
           (duration_s is not None and time.monotonic() - start >= duration_s) or (rounds is None and duration_s is None):
            return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="denoise", help="served task (default: denoise)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients, one clip each (default: 4)")
    parser.add_argument("--duration", type=float, default=600, help="seconds of measured rounds (default: 600)")
    parser.add_argument("--warmup", type=float, default=120, help="seconds of warm-up rounds before memory is "
                                                                   "taken as the baseline (default: 120)")
    parser.add_argument("--frames", type=int, default=48, help="frames per clip (default: 48)")
    parser.add_argument("--max-size", default="640x360", help="clips are scaled down to fit (default: 640x360)")
    parser.add_argument("--repository", type=Path, help="an already-built repository to copy (default: export the checkpoint)")
    parser.add_argument("--cpu-memory-arena", choices=("true", "false"), default="true",
                        help="ONNX Runtime's memory arena in the net model (default: true, as shipped; false "
                             "gives memory back after each call)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "load", help="scratch folder (default: build/load)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md",
                        help="markdown file the summary is appended to (default: benchmarks/RESULTS.md)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    width, _, height = args.max_size.partition("x")
    clips = load_clips(args.clients, args.frames, (int(width), int(height)))
    repository = prepare_repository(args.workdir / "repository", args.task, args.repository)
    update_parameters(repository / get_task(args.task).net_model / "config.pbtxt",
                      {"cpu_memory_arena": args.cpu_memory_arena})
    with CpuMeter() as cpu, TritonServer(repository, args.workdir / "tritonserver.log") as server:
        report = run_load(server.grpc_url, server.process.pid, clips, args.task, duration_s=args.duration, warmup_s=args.warmup)
    sizes = ", ".join(f"{c[0].shape[1]}x{c[0].shape[0]}" for c in clips)
    lines = [f"## {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, load: task `{args.task}`", "",
             f"- Command: `python -m benchmarks.load {' '.join(sys.argv[1:])}`",
             f"- Machine: {machine()}; a concurrent training job used {cpu.use.training_cores:.2f} cores on average",
             f"- Clips ({args.frames} frames each): {sizes}; {report.warmup_rounds} warm-up rounds ({args.warmup:g} s); "
             f"ONNX Runtime memory arena {'on' if args.cpu_memory_arena == 'true' else 'off'}",
             f"- {'PASS' if report.ok else 'FAIL'}: {report.summary()}",
             f"- Server RSS after each round (MiB): {', '.join(f'{k / 1024:.0f}' for k in report.rss_kib)}",
             f"- Window-model RSS after each round (MiB): {', '.join(f'{k / 1024:.0f}' for k in report.window_rss_kib)}",
             *[f"- problem: {p}" for p in report.problems[:10]], ""]
    with open(args.results, "a") as out:
        out.write("\n" + "\n".join(lines))
    print("\n".join(lines))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
