"""`benchmarks.run --smoke` end to end against a real tritonserver (so the benchmark code never
rots; it is also `make bench-smoke`). On a server of denoise alone: on a fresh clone it runs while
inpaint's export is still being made. Also `benchmarks.ort_arena` on tiny windows and
`benchmarks.graph_profile` on the shipped sr4 graph."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import graph_profile

from conftest import task_repository

pytestmark = [pytest.mark.server, pytest.mark.shipped_exports("denoise")]
ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke_runs_end_to_end(tmp_path: Path) -> None:
    repository = task_repository(tmp_path / "denoise_only", ["denoise"])
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--workdir", str(tmp_path), "--repository", str(repository)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("smoke_side_by_side.csv", "smoke_perf_analyzer.csv", "smoke_scaling.csv",
                 "smoke_throughput_latency.png", "smoke_fps_vs_resolution.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = (tmp_path / "RESULTS.md").read_text()
    for expected in ("served ensemble", "in-process ONNX Runtime", "in-process PyTorch", "client file restore",
                     "dynamic batching", "no batching", "system shm", "p99 ms"):
        assert expected in report, expected
    # Every configuration reports a p99 latency (the file restore excepted: not observable).
    p99s = []
    for line in report.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if "configuration" in cells:
            column = cells.index("p99 ms")
        elif line.startswith("| ") and "client file restore" not in line:
            p99s.append(float(cells[column]))
    assert len(p99s) >= 10 and all(v > 0 for v in p99s), p99s


def test_ort_arena_benchmark_measures_both_settings(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.ort_arena", "--sizes", "64x48", "--calls", "2", "--rounds", "1",
         "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| 64x48")]
    assert [cells[1].strip() for cells in rows] == ["on", "off"], proc.stdout
    assert all(float(cells[2]) > 0 and float(cells[3]) > 0 for cells in rows), proc.stdout


def test_graph_profile_attributes_the_time_to_the_network_modules(capsys) -> None:
    # 10 calls, not 3: under xdist the other worker can stall one call of these few-ms graphs.
    graph_profile.main(["--task", "sr4", "--size", "64x48", "--runs", "10", "--warmup", "2"])
    out = capsys.readouterr().out
    tables = [[line.split("|")[1:-1] for line in block.splitlines() if line.startswith("| ") and "share" not in line]
              for block in out.split("\n\n")[1:]]
    modules, operators = ({cells[0].strip(): float(cells[2].strip(" %")) for cells in rows} for rows in tables)
    assert sum(modules.values()) == pytest.approx(100, abs=0.5) and sum(operators.values()) == pytest.approx(100, abs=0.5)
    # sr4's six fusion blocks are most of its convolutions; ONNX Runtime's fused convolutions are
    # found by the outputs they are named after, so little is left unattributed.
    assert max(modules, key=modules.get) == "net.fusion_body", modules
    assert modules.get(graph_profile.RUNTIME, 0) < 10, modules
    assert max(operators, key=operators.get) == "Conv", operators
