"""The model repository a benchmark serves, and the repository's own Python code (windowing,
ONNX Runtime runner) loaded into this process so in-process baselines run exactly what the
server runs.

The repository is built in the benchmark's work folder (never in the committed one): either
exported from the task's checkpoint by export/repository.py's `build_repository` (which runs
`export.engine`), or copied from an already-built repository. A `<task>_net_nobatch` copy
without dynamic batching is added, so perf_analyzer can compare both in one server.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

from export.repository import build_repository
from training.contract import get_task

ROOT = Path(__file__).resolve().parents[1]
NOBATCH = "_nobatch"
IDLE_TIMEOUT_S = 60.0


def prepare_repository(dest: Path, task: str, source: Path | None = None) -> Path:
    """A servable repository for `task` in `dest` (replaced), plus `<task>_net_nobatch`.

    `source`: a repository whose `<task>_net/1` already holds the exported model; None builds
    one from training/checkpoints/<task>.pt."""
    spec = get_task(task)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if source is None:
        build_repository(dest, [task], IDLE_TIMEOUT_S)
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
    text = re.sub(r'name:\s*"[^"]*"', f'name: "{name}"', config.read_text(), count=1)
    text, found = re.subn(r"dynamic_batching\s*\{[^}]*\}", "", text)
    if not found:
        raise ValueError(f"{config}: no dynamic_batching block to remove")
    config.write_text(text)
    return name


def load_model_module(repository: Path, model: str, module: str) -> ModuleType:
    """Import `<repository>/<model>/1/<module>.py` under a private name (no sys.path change)."""
    path = repository / model / "1" / f"{module}.py"
    name = f"_bench_{model}_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # dataclasses look their module up while the class is created
    spec.loader.exec_module(loaded)
    return loaded


def onnx_path(repository: Path, task: str) -> Path:
    return repository / get_task(task).net_model / "1" / "model.onnx"
