"""The model repository a benchmark serves.

The repository is built in the benchmark's work folder (never in the committed one): either
exported from the task's checkpoint by export/repository.py's `build_repository` (which runs
`export.engine`), or copied from an already-built repository. A `<task>_net_nobatch` copy
without dynamic batching is added, so perf_analyzer can compare both in one server.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from export.repository import build_repository
from export.triton_config import parse, write
from training.contract import get_task

ROOT = Path(__file__).resolve().parents[1]
NOBATCH = "_nobatch"


def prepare_repository(dest: Path, task: str, source: Path | None = None) -> Path:
    """A servable repository for `task` in `dest` (replaced), plus `<task>_net_nobatch`.

    `source`: a repository whose `<task>_net/1` already holds the exported model; None builds
    one from training/checkpoints/<task>.pt."""
    spec = get_task(task)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if source is None:
        build_repository(dest, [task])
    else:
        for name in (spec.name, spec.window_model, spec.net_model):
            shutil.copytree(source / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    add_nobatch_variant(dest, spec.net_model)
    return dest


def add_nobatch_variant(repository: Path, net_model: str) -> str:
    """Copy `net_model` to `<net_model>_nobatch` with dynamic batching removed; its name."""
    name = net_model + NOBATCH
    shutil.copytree(repository / net_model, repository / name, ignore=shutil.ignore_patterns("__pycache__"))
    config = repository / name / "config.pbtxt"
    parsed = parse(config.read_text())
    if not parsed.HasField("dynamic_batching"):
        raise ValueError(f"{config}: no dynamic_batching block to remove")
    parsed.name = name
    parsed.ClearField("dynamic_batching")
    write(config, parsed)
    return name


def onnx_path(repository: Path, task: str) -> Path:
    return repository / get_task(task).net_model / "1" / "model.onnx"
