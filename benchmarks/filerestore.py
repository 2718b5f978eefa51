"""The full client file restore as a user runs it: `python -m client.restore IN -o OUT.mp4`
(decode -> gRPC stream -> re-order -> H.264 encode), timed in this process so interpreter
start-up is not counted, on a lossless file holding exactly the benchmark's frames."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.demo import read_frames, write_lossless
from benchmarks.measure import Result, resolution_name, with_cpu
from benchmarks.procstat import CpuMeter
from client.restore import main as restore_main


def write_input(path: Path, frames: list[np.ndarray], rate: float = 24.0) -> Path:
    """The benchmark frames as an FFV1 .mkv (lossless, cheap to decode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_lossless(path, frames, rate)
    return path


def file_restore_result(url: str, task: str, source: Path, output: Path, frame_count: int,
                        server_pid: int | None) -> Result:
    """Frames/s of one client restore of `source`; raises RuntimeError if it fails or the output
    does not have `frame_count` frames. Per-frame latency is not observable from outside the
    client, so p50/p99 are NaN (the served-stream rows carry it)."""
    output.unlink(missing_ok=True)
    with CpuMeter(server_pid) as cpu:
        start = time.perf_counter()
        status = restore_main([str(source), "-o", str(output), "--task", task, "--url", url, "-q"])
        seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"client.restore exited with {status}")
    restored, _ = read_frames(output)
    if len(restored) != frame_count:
        raise RuntimeError(f"{output} has {len(restored)} frames, expected {frame_count}")
    return with_cpu(Result("client file restore (decode+stream+encode .mp4)", 1, resolution_name(restored[0]),
                           frame_count, frame_count / seconds, float("nan"), float("nan")), cpu.use)
