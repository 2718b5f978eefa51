"""In-process baselines: the same network over the same frames without a server.

ONNX Runtime runs the served model.onnx through the served model's own runner (ort_runner.py,
same thread settings); PyTorch runs ServingNet from the checkpoint. Both restore every frame of
the clip from its mirrored T-frame window (the window model's own `window_indices`), one window
per call as a stream would, after `warmup` untimed calls (a fresh process can run 2x slow at first).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import Result, from_latencies, resolution_name
from benchmarks.procstat import CpuMeter
from benchmarks.repository import onnx_path
from export.repository import load_model_code
from training.contract import get_task

WARMUP_CALLS = 10


def windows(repository: Path, task: str, frames: list[np.ndarray]) -> Iterator[np.ndarray]:
    """uint8 (1, T, H, W, 3) window centred on each frame in turn, edges mirrored as served."""
    spec = get_task(task)
    indices = load_model_code(spec.window_model, "windowing", repository).window_indices
    for centre in range(len(frames)):
        window = np.stack([frames[i] for i in indices(centre, spec.net_frames, len(frames))])
        yield window[np.newaxis]


def _time_calls(config: str, run: Callable[[np.ndarray], np.ndarray], repository: Path, task: str,
                frames: list[np.ndarray], warmup: int) -> Result:
    first = next(windows(repository, task, frames))
    for _ in range(warmup):
        run(first)
    latencies = []
    with CpuMeter() as cpu:
        start = time.perf_counter()
        previous = start
        # Building the window is timed too: the served path pays for it in the window model.
        for window in windows(repository, task, frames):
            run(window)
            now = time.perf_counter()
            latencies.append(now - previous)
            previous = now
        seconds = time.perf_counter() - start
    return from_latencies(config, 1, resolution_name(frames[0]), latencies, seconds, cpu.use)


def served_runner(repository: Path, task: str, memory_arena: bool = True) -> Any:
    """`task`'s model.onnx in `repository` through the served model's own runner (ort_runner.py,
    every core, the same session settings): an OrtRunner, whose class lives in the repository."""
    ort_runner = load_model_code(get_task(task).net_model, "ort_runner", repository)
    return ort_runner.OrtRunner(onnx_path(repository, task), ort_runner.resolve_threads("0"), memory_arena)


def onnxruntime_result(repository: Path, task: str, frames: list[np.ndarray], warmup: int = WARMUP_CALLS) -> Result:
    """Frames/s of model.onnx in ONNX Runtime with the served runner's session settings."""
    runner = served_runner(repository, task)
    return _time_calls("in-process ONNX Runtime", lambda w: runner.run({runner.input_names[0]: w}),
                       repository, task, frames, warmup)


def pytorch_result(checkpoint: Path, repository: Path, task: str, frames: list[np.ndarray],
                   warmup: int = WARMUP_CALLS) -> Result:
    """Frames/s of the checkpoint's ServingNet in PyTorch (eager, inference mode)."""
    import torch

    from training.checkpoint import load_checkpoint
    from training.processing import ServingNet

    net = ServingNet(load_checkpoint(checkpoint)[0]).eval()

    def run(window: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(window)).numpy()

    return _time_calls("in-process PyTorch", run, repository, task, frames, warmup)
