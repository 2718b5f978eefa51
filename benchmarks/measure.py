"""One measured configuration (frames/s, per-frame latency percentiles, CPU used) and how it is
written out: a CSV row and a markdown table row."""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from benchmarks.procstat import CpuUse


@dataclass
class Result:
    """Throughput and latency of one configuration over one set of frames."""

    config: str              # e.g. "in-process ONNX Runtime", "served ensemble"
    concurrency: int         # concurrent streams (ensemble) or requests (perf_analyzer)
    resolution: str          # "640x360"
    frames: int              # frames restored in the timed part (0: perf_analyzer does not say)
    fps: float               # frames restored per second of wall time
    p50_ms: float
    p99_ms: float
    machine_cores: float = float("nan")   # CPU in use on the whole machine meanwhile (cores)
    server_cores: float = float("nan")    # of which tritonserver + stubs
    client_cores: float = float("nan")    # of which the benchmark process (client or in-process run)
    training_cores: float = float("nan")  # of which a concurrent training job
    note: str = ""

    @property
    def frames_per_core_s(self) -> float:
        """Frames per CPU-second spent by this path (server + client): unlike frames/s, this
        hardly depends on how much CPU other processes leave over."""
        used = self.server_cores + self.client_cores
        return self.fps / used if used > 0 else float("nan")


def from_latencies(config: str, concurrency: int, resolution: str, latencies_s: list[float], seconds: float,
                   cpu: CpuUse | None = None, note: str = "") -> Result:
    """A Result from per-frame latencies (seconds) and the wall time they took together."""
    lat = np.asarray(latencies_s) * 1e3
    p50, p99 = (np.percentile(lat, [50, 99]) if lat.size else (float("nan"),) * 2)
    return with_cpu(Result(config, concurrency, resolution, int(lat.size), lat.size / seconds, float(p50), float(p99), note=note), cpu)


def with_cpu(result: Result, cpu: CpuUse | None) -> Result:
    """`result` with the CPU use measured while it ran filled in."""
    if cpu is not None:
        result.machine_cores, result.server_cores, result.client_cores, result.training_cores = (
            cpu.machine_cores, cpu.server_cores, cpu.client_cores, cpu.training_cores)
    return result


def resolution_name(frame: np.ndarray) -> str:
    return f"{frame.shape[1]}x{frame.shape[0]}"


def write_csv(path: Path, results: list[Result]) -> None:
    """All results of one kind, one row each, fps included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(Result)])
        writer.writeheader()
        for r in results:
            writer.writerow(asdict(r))  # frames per CPU-s follows from fps and the cores columns


def markdown_table(results: list[Result], baseline: Result | None = None) -> str:
    """A markdown table of `results`; with `baseline`, a column of fps relative to it."""
    head = ["configuration", "concurrency", "resolution", "frames", "frames/s", "p50 ms", "p99 ms",
            "frames per CPU-s", "CPU busy (cores)", "server", "client", "training"]
    if baseline is not None:
        head.insert(5, f"vs {baseline.config}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r.config + (f" ({r.note})" if r.note else ""), str(r.concurrency), r.resolution, str(r.frames or "-"), f"{r.fps:.2f}",
               f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.frames_per_core_s:.2f}", f"{r.machine_cores:.2f}",
               f"{r.server_cores:.2f}", f"{r.client_cores:.2f}", f"{r.training_cores:.2f}"]
        if baseline is not None:
            row.insert(5, f"{100 * r.fps / baseline.fps:.0f}%")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
