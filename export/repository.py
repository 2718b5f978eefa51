"""Assemble a servable model repository outside the committed one (tests, benchmarks): copy the
committed entries of the tasks that ship a checkpoint and install their networks with
`export.engine`, optionally with a shorter idle-sequence timeout."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "model_repository"
CHECKPOINTS = ROOT / "training" / "checkpoints"


def served_tasks() -> list[str]:
    """Tasks that have a shipped checkpoint and a model-repository entry."""
    return sorted(p.stem for p in CHECKPOINTS.glob("*.pt") if (REPOSITORY / p.stem).is_dir())


def build_repository(dest: Path, tasks: list[str], idle_timeout_s: float | None = None,
                     checkpoints: Path = CHECKPOINTS) -> Path:
    """Copy the committed entries of `tasks` into `dest`, export their networks (`checkpoints`/
    <task>.pt) into it (ONNX Runtime backend), and set the window models' idle-sequence timeout
    if given."""
    for task in tasks:
        for name in (task, f"{task}_window", f"{task}_net"):
            shutil.copytree(REPOSITORY / name, dest / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "model.onnx", "*.json"))
        subprocess.run(
            [sys.executable, "-m", "export.engine", "--task", task, "--backend", "onnxruntime",
             "--checkpoint", str(checkpoints / f"{task}.pt"), "--repository", str(dest)],
            check=True, cwd=ROOT,
        )
        if idle_timeout_s is not None:
            config = dest / f"{task}_window" / "config.pbtxt"
            text = re.sub(r"max_sequence_idle_microseconds: \d+",
                          f"max_sequence_idle_microseconds: {int(idle_timeout_s * 1e6)}", config.read_text())
            text = re.sub(r'(key: "idle_timeout_s" value: \{ string_value: )"[^"]*"', rf'\1"{idle_timeout_s:g}"', text)
            config.write_text(text)
    return dest
