"""Shared fixtures: a real tritonserver on free ports, serving a copy of model_repository whose
networks were exported by the project's own `export.engine` from the shipped checkpoints."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from client.local_server import TritonServer

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "training" / "checkpoints"
TEST_IDLE_TIMEOUT_S = 4


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (and TensorRT where it says so); skipped without one")
    config.addinivalue_line("markers", "server: starts a real tritonserver")


def served_tasks() -> list[str]:
    """Tasks that have a shipped checkpoint and a model-repository entry."""
    return sorted(p.stem for p in CHECKPOINTS.glob("*.pt") if (ROOT / "model_repository" / p.stem).is_dir())


def build_repository(dest: Path, tasks: list[str], idle_timeout_s: float) -> Path:
    """Copy the committed repository (only `tasks`), export their networks into it, and shorten
    the idle-sequence timeout so reaping can be tested in seconds."""
    for task in tasks:
        for name in (task, f"{task}_window", f"{task}_net"):
            shutil.copytree(ROOT / "model_repository" / name, dest / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "model.onnx", "*.json"))
        subprocess.run(
            [sys.executable, "-m", "export.engine", "--task", task, "--backend", "onnxruntime",
             "--checkpoint", str(CHECKPOINTS / f"{task}.pt"), "--repository", str(dest)],
            check=True, cwd=ROOT,
        )
        config = dest / f"{task}_window" / "config.pbtxt"
        text = re.sub(r"max_sequence_idle_microseconds: \d+", f"max_sequence_idle_microseconds: {int(idle_timeout_s * 1e6)}", config.read_text())
        text = re.sub(r'(key: "idle_timeout_s" value: \{ string_value: )"[^"]*"', rf'\1"{idle_timeout_s:g}"', text)
        config.write_text(text)
    return dest


@pytest.fixture(scope="session")
def served_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tasks = served_tasks()
    if not tasks:
        pytest.fail(f"no checkpoint in {CHECKPOINTS} has a model_repository entry")
    return build_repository(tmp_path_factory.mktemp("model_repository"), tasks, TEST_IDLE_TIMEOUT_S)


@pytest.fixture(scope="session")
def triton_server(served_repository: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real tritonserver for the session (tests that kill servers start their own)."""
    log = tmp_path_factory.mktemp("logs") / "tritonserver.log"
    with TritonServer(served_repository, log) as server:
        yield server
