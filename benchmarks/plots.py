"""PNG plots of benchmark results: throughput vs p99 latency per configuration (one line per
configuration, one point per concurrency level), and frames/s vs resolution."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.measure import Result  # noqa: E402


def _series(results: list[Result], key) -> dict[str, list[Result]]:
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[key(r)].append(r)
    return groups


def throughput_latency(results: list[Result], path: Path, title: str) -> Path:
    """frames/s (y) against p99 latency (x), one line per configuration, points labelled by
    concurrency."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, rows in _series(results, lambda r: r.config).items():
        rows = sorted(rows, key=lambda r: r.concurrency)
        ax.plot([r.p99_ms for r in rows], [r.fps for r in rows], marker="o", label=name)
        for r in rows:
            ax.annotate(str(r.concurrency), (r.p99_ms, r.fps), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("p99 latency per frame (ms)")
    ax.set_ylabel("frames/s")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fps_vs_resolution(results: list[Result], path: Path, title: str) -> Path:
    """frames/s (log y) against megapixels per frame, one line per configuration."""
    def megapixels(r: Result) -> float:
        w, h = (int(v) for v in r.resolution.split("x"))
        return w * h / 1e6

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, rows in _series(results, lambda r: f"{r.config} x{r.concurrency}").items():
        rows = sorted(rows, key=megapixels)
        ax.plot([megapixels(r) for r in rows], [r.fps for r in rows], marker="o", label=name)
    for resolution, rows in _series(results, lambda r: r.resolution).items():  # one label per size
        top = max(rows, key=lambda r: r.fps)
        ax.annotate(resolution, (megapixels(top), top.fps), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("megapixels per frame")
    ax.set_ylabel("frames/s")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
