"""CPU and memory of processes, read from /proc (Linux): what the server tree and the rest of
the machine (a concurrent training job, say) used while a benchmark ran.

The server's Python-backend stubs are its child processes, so "the server" here is always the
tritonserver process plus all its descendants.
"""
from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        if Path(f"/proc/{p}").exists():
            tree.append(p)
            todo += _children(p)
    return tree


def stub_pids(pids: list[int], model: str) -> list[int]:
    """Those of `pids` that are Python-backend stubs of `model` (a stub's second argument is
    `<repository>/<model>/<version>/model.py`)."""
    found = []
    for pid in pids:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(args) > 1 and Path(args[1].decode(errors="replace")).parent.parent.name == model:
            found.append(pid)
    return found


def rss_kib(pids: list[int]) -> int:
    """Sum of VmRSS over `pids` (KiB); processes that vanished count 0."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds_each(pids: list[int]) -> dict[int, float]:
    """User + system CPU time used so far by each live process of `pids`."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (stat fields 14, 15)
        except (OSError, IndexError):
            pass
    return used


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used in between by processes alive at the end (new ones counted from 0)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def machine() -> str:
    """E.g. "2-core x86_64 CPU, 24 GiB, no GPU"."""
    gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = "GPU present" if shutil.which("nvidia-smi") else "no GPU"
    return f"{os.cpu_count()}-core {platform.machine()} CPU, {gib:.0f} GiB, {gpu}"


def pids_matching(text: str) -> list[int]:
    """Processes whose command line contains `text` (e.g. "training.train"), this one excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@dataclass
class CpuUse:
    """CPU used during one interval, in cores (1.0 = one core fully busy)."""

    machine_cores: float   # everything on the machine
    server_cores: float    # tritonserver + its stubs
    client_cores: float    # this process (clients, in-process baselines) + children it waited for
    training_cores: float  # any `training.train` processes running meanwhile
    cores: int             # cores of the machine


class CpuMeter:
    """Context manager: CPU used by the machine, the server tree, this process and training."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.use: CpuUse | None = None

    def _sample(self) -> tuple:
        server = cpu_seconds_each(process_tree(self.server_pid)) if self.server_pid else {}
        times = os.times()  # this process and its waited-for children (perf_analyzer)
        return (time.monotonic(), _machine_ticks(), server, {0: sum(times[:4])},
                cpu_seconds_each(pids_matching("training.train")))

    def __enter__(self) -> "CpuMeter":
        self._start = self._sample()
        return self

    def __exit__(self, *exc) -> None:
        end = self._sample()
        wall = max(end[0] - self._start[0], 1e-9)
        cores = os.cpu_count() or 1
        busy = end[1][0] - self._start[1][0]
        total = max(end[1][1] - self._start[1][1], 1)
        self.use = CpuUse(
            machine_cores=cores * busy / total,
            server_cores=_delta(self._start[2], end[2]) / wall,
            client_cores=_delta(self._start[3], end[3]) / wall,
            training_cores=_delta(self._start[4], end[4]) / wall,
            cores=cores,
        )
