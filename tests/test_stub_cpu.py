"""benchmarks/stub_cpu.py against a real tritonserver: per-frame CPU of each Python-backend stub,
on tiny frames of one task, attributed to the stub that spent it."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.procstat import CLOCK_TICKS
from benchmarks.stub_cpu import measure, stub_pids
from conftest import task_repository
from export.triton_config import NetOptions

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.shipped_exports("denoise")]


def test_stub_pids_names_each_models_own_stub(triton_server) -> None:
    """On the session's server, among every task's stubs."""
    pid = triton_server.process.pid
    window, net = stub_pids(pid, "denoise_window"), stub_pids(pid, "denoise_net")
    for model, pids in (("denoise_window", window), ("denoise_net", net)):
        assert pids, model
        for stub in pids:
            argv = Path(f"/proc/{stub}/cmdline").read_bytes().split(b"\0")
            assert argv[1].endswith(f"/{model}/1/model.py".encode()), argv
    assert not set(window) & set(net)
    assert len(window) == 1 and len(net) == NetOptions.cpu_instances  # one stub process per net instance
    assert stub_pids(pid, "denoise") == []  # the ensemble has no stub


def test_per_frame_cpu_of_window_and_net_stubs(tmp_path: Path) -> None:
    # /proc gives the scheduler's exact CPU time rounded to 10 ms clock ticks: 32 frames of 480x270
    # cost the window stub about 30 ms (about 1 ms a frame, measured 2026-12-05), so a zero would
    # mean its CPU went uncounted, not rounding.
    repository = task_repository(tmp_path / "denoise_only", ["denoise"])  # its server starts sooner than all four
    result = measure("denoise", (480, 270), frames=32, warmup=3, repository=repository, workdir=tmp_path)
    print(result.row())
    assert result.frame_size == (480, 270) and result.frames == 32
    assert result.in_flight == 2 * 5 + 8  # what the client keeps in flight for a 5-frame window
    assert result.frames_per_s > 0
    # The window stub holds every frame and sends every window: it spends CPU of its own, and the
    # network (a U-Net with flow alignment) spends far more per frame than windowing does.
    assert 0 < result.window_ms < result.net_ms
    assert 0 < result.graph_share < 1
    # Both stubs are part of the server tree, measured over the same interval (up to one clock
    # tick of rounding each).
    assert result.window_ms + result.net_ms <= result.server_ms + 1000 * 2 / CLOCK_TICKS / result.frames
