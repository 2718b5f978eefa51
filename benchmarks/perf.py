"""perf_analyzer runs with real input: windows of a real clip for `<task>_net`, and whole frame
sequences (one sequence per stream, sequence length = clip length) for the decoupled ensemble
(`--streaming --async` over gRPC). One perf_analyzer process per concurrency level, so the CPU
used meanwhile is known per row.

Each run measures windows of a fixed request count (`count_windows`) and accepts the first
three within 10x of each other (`-s 1000`, up to MAX_TRIALS windows): another process (training) shares the 2 cores, and the default stability
search (3 windows within 10%) then fails or runs for minutes; p50/p99 show the spread.
(`--request-count` is no substitute: 2.51 divides the count by whole seconds.) perf_analyzer
reads server statistics, a restricted protocol here, so it is given the server's admin key.
"""
from __future__ import annotations

import base64
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from client.local_server import ADMIN_HEADER, TritonServer
from benchmarks.measure import Result, resolution_name, with_cpu
from benchmarks.procstat import CpuMeter

# Windows perf_analyzer may measure before giving up: a fresh ONNX Runtime session meets each new
# batch shape once at its first requests, which can be more than 10x slower than the rest, so three
# windows were sometimes all unstable (make test's smoke run, 2026-12-05).
MAX_TRIALS = 10


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer failed; the message holds the end of its output."""


def perf_analyzer_executable() -> str:
    """The launcher `make setup` installs beside this interpreter, else `perf_analyzer` on PATH."""
    beside = Path(sys.prefix) / "bin" / "perf_analyzer"
    found = str(beside) if beside.exists() else shutil.which("perf_analyzer")
    if not found:
        raise FileNotFoundError("perf_analyzer not found: run `make setup` (installs .venv/bin/perf_analyzer)")
    return found


def _tensor(array: np.ndarray) -> dict:
    return {"b64": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii"), "shape": list(array.shape)}


def write_window_data(path: Path, windows: list[np.ndarray], name: str = "WINDOW") -> Path:
    """perf_analyzer --input-data JSON: one (T, H, W, 3) window per request, cycled."""
    path.write_text(json.dumps({"data": [{name: _tensor(w)} for w in windows]}))
    return path


def write_sequence_data(path: Path, clips: list[list[np.ndarray]], name: str = "FRAME") -> Path:
    """perf_analyzer --input-data JSON: one stream per clip, one (H, W, 3) frame per request.
    perf_analyzer makes each stream one sequence whose length is the clip's length."""
    path.write_text(json.dumps({"data": [[{name: _tensor(f)} for f in clip] for clip in clips]}))
    return path


def run_perf_analyzer(url: str, admin_key: str, model: str, data: Path, concurrency: int, requests: int,
                      csv_path: Path, extra: tuple[str, ...] = (), timeout_s: float = 600,
                      window_ms: int = 0) -> dict[str, str]:
    """One perf_analyzer measurement at `concurrency`, three windows of `requests` requests each
    (each window lasts at least a second), or of `window_ms` milliseconds each if given (a smoke
    run's short windows); its CSV row (latencies in microseconds)."""
    windows = (["--measurement-mode", "time_windows", "--measurement-interval", str(window_ms)] if window_ms else
               ["--measurement-mode", "count_windows", "--measurement-request-count", str(requests)])
    cmd = [perf_analyzer_executable(), "-m", model, "-i", "grpc", "-u", url, "--input-data", str(data),
           "--concurrency-range", f"{concurrency}:{concurrency}", *windows,
           "--stability-percentage", "1000", "--max-trials", str(MAX_TRIALS),
           "-H", f"triton-grpc-protocol-{ADMIN_HEADER}:{admin_key}", "-f", str(csv_path), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not csv_path.exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise PerfAnalyzerError(f"$ {' '.join(cmd)}\nexit {proc.returncode}:\n{tail}")
    with open(csv_path) as f:
        return next(csv.DictReader(f))


def perf_result(config: str, server: TritonServer, model: str, data: Path, concurrency: int, requests: int,
                frame: np.ndarray, csv_path: Path, extra: tuple[str, ...] = (), window_ms: int = 0) -> Result:
    """perf_analyzer at one concurrency as a Result (one inference = one restored frame)."""
    with CpuMeter(server.process.pid) as cpu:
        row = run_perf_analyzer(server.grpc_url, server.admin_key, model, data, concurrency, requests, csv_path, extra,
                                window_ms=window_ms)
    return with_cpu(Result(config, concurrency, resolution_name(frame), 0,
                           float(row["Inferences/Second"]), float(row["p50 latency"]) / 1e3,
                           float(row["p99 latency"]) / 1e3, note="perf_analyzer"), cpu.use)
