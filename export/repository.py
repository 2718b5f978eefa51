"""Assemble a servable model repository outside the committed one (tests, benchmarks): copy the
committed entries of the tasks that ship a checkpoint and install their networks with
`export.engine` (reusing exports from build/onnx_cache), optionally with a shorter idle-sequence
timeout."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from export import engine
from export.onnx_cache import CACHE

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "model_repository"
CHECKPOINTS = ROOT / "training" / "checkpoints"


def served_tasks() -> list[str]:
    """Tasks that have a shipped checkpoint and a model-repository entry."""
    return sorted(p.stem for p in CHECKPOINTS.glob("*.pt") if (REPOSITORY / p.stem).is_dir())


def build_repository(dest: Path, tasks: list[str], idle_timeout_s: float | None = None,
                     checkpoints: Path = CHECKPOINTS, cache: Path | None = CACHE) -> Path:
    """Copy the committed entries of `tasks` into `dest`, export their networks (`checkpoints`/
    <task>.pt) into it (ONNX Runtime backend; an export already in `cache` is copied), and set
    the window models' idle-sequence timeout if given."""
    for task in tasks:
        for name in (task, f"{task}_window", f"{task}_net"):
            shutil.copytree(REPOSITORY / name, dest / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "model.onnx", "*.json"))
        args = ["--task", task, "--backend", "onnxruntime", "--checkpoint", str(checkpoints / f"{task}.pt"),
                "--repository", str(dest), *(["--onnx-cache", str(cache)] if cache else [])]
        if engine.main(args) != 0:
            raise RuntimeError(f"export.engine {' '.join(args)} failed (its reason is printed above)")
        if idle_timeout_s is not None:
            config = dest / f"{task}_window" / "config.pbtxt"
            text = re.sub(r"max_sequence_idle_microseconds: \d+",
                          f"max_sequence_idle_microseconds: {int(idle_timeout_s * 1e6)}", config.read_text())
            text = re.sub(r'(key: "idle_timeout_s" value: \{ string_value: )"[^"]*"', rf'\1"{idle_timeout_s:g}"', text)
            config.write_text(text)
    return dest
