"""ONNX Runtime's CPU memory arena on and off, side by side: time per window and the memory the
process still holds afterwards, for the served network (`cpu_memory_arena` in `<task>_net`'s
config). Each setting runs in its own fresh process (so RSS is its own), alternating, through the
served model's own runner (ort_runner.py, same thread settings), on windows of a real clip.

    python -m benchmarks.ort_arena --task denoise --sizes 176x144,1920x1080 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.frames import load_frames, parse_size
from benchmarks.inprocess import served_runner
from benchmarks.procstat import machine, rss_kib
from benchmarks.repository import onnx_path
from export.repository import build_repository
from training.contract import get_task

ROOT = Path(__file__).resolve().parents[1]


def measure(repository: Path, task: str, size: tuple[int, int], arena: bool, calls: int) -> dict[str, float]:
    """Mean ms per window over `calls` (after one untimed call) and RSS (MiB) after them."""
    runner = served_runner(repository, task, arena)
    if len(runner.input_names) > 1:
        raise SystemExit(f"ort_arena: {task} needs inputs {runner.input_names}; only single-input tasks are measured")
    feeds = {runner.input_names[0]: np.stack(load_frames(size, get_task(task).net_frames))[np.newaxis]}
    runner.run(feeds)
    start = time.perf_counter()
    for _ in range(calls):
        runner.run(feeds)
    return {"ms": (time.perf_counter() - start) / calls * 1e3, "rss_mib": rss_kib([os.getpid()]) / 1024}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ort_arena", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="denoise", help="a single-input task (default: denoise)")
    parser.add_argument("--sizes", default="176x144,1920x1080", help="window sizes WxH, comma-separated")
    parser.add_argument("--calls", type=int, default=0,
                        help="timed calls per size (default: 20 below 640x360, else 3)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating on/off rounds (default: 2)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "ort_arena", help="scratch folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one measurement, in a fresh process
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repository = args.workdir / "repository"
    if args.child:
        size, arena = args.child.split(":")
        width, height = parse_size(size)
        calls = args.calls or (20 if width * height < 640 * 360 else 3)
        print(json.dumps(measure(repository, args.task, (width, height), arena == "on", calls)))
        return 0
    if not onnx_path(repository, args.task).is_file():
        build_repository(repository, [args.task])
    print(f"ort_arena: {args.task} on {machine()}", flush=True)
    print("| size | arena | ms per window | RSS after (MiB) |\n|---|---|---|---|")
    for size in args.sizes.split(","):
        for _ in range(args.rounds):
            for arena in ("on", "off"):
                proc = subprocess.run([sys.executable, "-m", "benchmarks.ort_arena", "--task", args.task,
                                       "--workdir", str(args.workdir), "--calls", str(args.calls),
                                       "--child", f"{size}:{arena}"],
                                      cwd=ROOT, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return proc.returncode
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"| {size} | {arena} | {result['ms']:.1f} | {result['rss_mib']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
