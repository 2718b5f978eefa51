"""The quality benchmark's served path: the same validation windows through a real tritonserver's
<task>_net (the session's server) agree with the in-process network (<= 1 grey level), and
`--url` reports it."""
from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks import quality as q
from export.repository import CHECKPOINTS, served_tasks
from training.checkpoint import load_checkpoint
from training.evaluate import restore, validation_set

TASKS = [t for t in served_tasks() if t in ("denoise", "deblock", "deblur", "sr4")]
pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.mark.parametrize("task", TASKS)
def test_served_matches_in_process(triton_server, task, tmp_path):
    net, _ = load_checkpoint(CHECKPOINTS / f"{task}.pt")
    val = validation_set(task, 5, count=2, crop=64)
    served = q.served_restore(triton_server.grpc_url, task, val.windows, net.config)
    assert np.abs(served.astype(int) - restore(net, val.windows).astype(int)).max() <= 1

    out = tmp_path / "table.md"
    q.main(["--tasks", task, "--count", "1", "--crop", "64", "--sigmas", "25", "--speed-calls", "1",
            "--url", triton_server.grpc_url, "--out", str(out)])
    diffs = [int(d) for d in re.findall(r"max \|served - in-process\| = (\d+)", out.read_text())]
    assert diffs and max(diffs) <= 1
