"""Shared fixtures: a real tritonserver on free ports, serving a copy of model_repository whose
networks were exported by the project's own `export.engine` from the shipped checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest

from client.local_server import TritonServer
from export.repository import CHECKPOINTS, build_repository, served_tasks
from export.triton_config import WindowOptions

# Short, so reaping is tested in seconds; long enough for a slow frame on a loaded 2-core machine.
TEST_IDLE_TIMEOUT_S = 6


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (and TensorRT where it says so); skipped without one")
    config.addinivalue_line("markers", "server: starts a real tritonserver")


@pytest.fixture(scope="session")
def served_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tasks = served_tasks()
    if not tasks:
        pytest.fail(f"no checkpoint in {CHECKPOINTS} has a model_repository entry")
    return build_repository(tmp_path_factory.mktemp("model_repository"), tasks,
                            WindowOptions(idle_timeout_s=TEST_IDLE_TIMEOUT_S))


@pytest.fixture(scope="session")
def triton_server(served_repository: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real tritonserver for the session (tests that kill servers start their own)."""
    log = tmp_path_factory.mktemp("logs") / "tritonserver.log"
    with TritonServer(served_repository, log) as server:
        yield server
