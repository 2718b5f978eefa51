"""Assemble a servable model repository outside the committed one (tests, benchmarks): copy the
committed entries of the tasks that ship a checkpoint and install their networks with
`export.engine` (reusing exports from build/onnx_cache), optionally with other window-model options (a shorter idle-sequence timeout,
tighter limits). Also loads the repository's own Python files into this process, for tests and
benchmarks that run exactly what the server runs."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from export import engine
from export.onnx_cache import CACHE
from export.triton_config import WindowOptions, window_config, write
from training.contract import get_task

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "model_repository"
CHECKPOINTS = ROOT / "training" / "checkpoints"


def served_tasks() -> list[str]:
    """Tasks that have a shipped checkpoint and a model-repository entry."""
    return sorted(p.stem for p in CHECKPOINTS.glob("*.pt") if (REPOSITORY / p.stem).is_dir())


def build_repository(dest: Path, tasks: list[str], window: WindowOptions | None = None,
                     checkpoints: Path = CHECKPOINTS, cache: Path | None = CACHE,
                     engine_args: tuple[str, ...] = ()) -> Path:
    """Copy the committed entries of `tasks` into `dest`, export their networks (`checkpoints`/
    <task>.pt) into it (ONNX Runtime backend; an export already in `cache` is copied; more
    `export.engine` flags in `engine_args`), and write the window models' configs with `window`'s
    options if given."""
    for task in tasks:
        for name in (task, f"{task}_window", f"{task}_net"):
            shutil.copytree(REPOSITORY / name, dest / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "model.onnx", "*.json"))
        args = ["--task", task, "--backend", "onnxruntime", "--checkpoint", str(checkpoints / f"{task}.pt"),
                "--repository", str(dest), *(["--onnx-cache", str(cache)] if cache else []), *engine_args]
        if engine.main(args) != 0:
            raise RuntimeError(f"export.engine {' '.join(args)} failed (its reason is printed above)")
        if window is not None:
            write(dest / f"{task}_window" / "config.pbtxt", window_config(get_task(task), window))
    return dest


def load_model_code(model: str, module: str, repository: Path = REPOSITORY) -> ModuleType:
    """Import `<repository>/<model>/1/<module>.py` under a private name, without touching
    sys.path (the Python backend puts that directory first on the server's path; here several
    models' files of the same name must not shadow one another)."""
    path = repository / model / "1" / f"{module}.py"
    name = f"_repository_{repository.resolve().as_posix().replace('/', '_')}_{model}_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # dataclasses look their module up while the class is created
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[name]
        raise
    return loaded
