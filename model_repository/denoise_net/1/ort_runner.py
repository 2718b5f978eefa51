"""The logic of the `<task>_net` Python-backend model, kept free of Triton so tests reach it:
validate each request's arrays against the ONNX graph's own inputs, stack requests whose
shapes agree into one ONNX Runtime call, run differing shapes separately, split the results
back per request. A bad request yields its own error message; the others still run.

Tensor names, ranks and fixed dims come from the ONNX file itself (not from training code,
which the server process cannot import).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Arrays = dict[str, "np.ndarray | None"]
Dim = int | str | None  # fixed size, symbolic name (shared across inputs), or unknown


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, element type and dims (batch first), as ONNX Runtime reports them."""

    name: str
    dtype: np.dtype
    dims: tuple[Dim, ...]


def _describe(array: np.ndarray) -> str:
    return f"dtype {array.dtype}, shape {list(array.shape)}"


def validate(arrays: Arrays, specs: Sequence[InputSpec]) -> str | None:
    """Why `arrays` cannot be run, naming the tensor and its shape; None when it can.

    Dims that share a symbolic name across inputs (batch, height, width) must agree."""
    bound: dict[str, tuple[str, int]] = {}
    for spec in specs:
        array = arrays.get(spec.name)
        if array is None:
            return f"missing input tensor {spec.name}"
        expected = "[" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in spec.dims) + "]"
        if array.dtype != spec.dtype:
            return f"{spec.name}: expected {spec.dtype} {expected}, got {_describe(array)}"
        if array.ndim != len(spec.dims):
            return f"{spec.name}: expected rank {len(spec.dims)} {expected}, got {_describe(array)}"
        for axis, (dim, size) in enumerate(zip(spec.dims, array.shape)):
            if size < 1:
                return f"{spec.name}: empty axis {axis} in shape {list(array.shape)}"
            if isinstance(dim, int) and size != dim:
                return f"{spec.name}: axis {axis} must be {dim} {expected}, got {_describe(array)}"
            if isinstance(dim, str):
                first = bound.setdefault(dim, (spec.name, size))
                if first[1] != size:
                    return (f"{spec.name}: {dim} is {size} in shape {list(array.shape)} but "
                            f"{first[1]} in {first[0]}")
    return None


def shape_key(arrays: Arrays, names: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """Per-item shapes (batch dim dropped): requests with equal keys can share one call."""
    return tuple(tuple(arrays[name].shape[1:]) for name in names)  # type: ignore[union-attr]


def group_by_shape(requests: Sequence[Arrays], names: Sequence[str], valid: Sequence[int]) -> list[list[int]]:
    """Indices of the `valid` requests grouped by shape key, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for index in valid:
        groups.setdefault(shape_key(requests[index], names), []).append(index)
    return list(groups.values())


def run_requests(run: Callable[[dict[str, np.ndarray]], np.ndarray], requests: Sequence[Arrays],
                 specs: Sequence[InputSpec]) -> list[np.ndarray | str]:
    """One result per request: its output array, or an error message.

    Requests of one shape are concatenated along the batch axis into a single `run` call and
    the output is split back by each request's batch size."""
    names = [spec.name for spec in specs]
    results: list[np.ndarray | str] = [validate(r, specs) or "" for r in requests]
    valid = [i for i, r in enumerate(results) if r == ""]
    for group in group_by_shape(requests, names, valid):
        for index, result in zip(group, _run_group(run, requests, names, group)):
            results[index] = result
    return results


def _run_group(run: Callable[[dict[str, np.ndarray]], np.ndarray], requests: Sequence[Arrays],
               names: Sequence[str], group: list[int]) -> list[np.ndarray | str]:
    if len(group) == 1:  # no copy for an unbatched request
        feeds = {name: requests[group[0]][name] for name in names}
    else:
        feeds = {name: np.concatenate([requests[i][name] for i in group]) for name in names}
    try:
        outputs = run(feeds)
    except Exception as err:  # noqa: BLE001 - any runtime failure becomes that request's error
        if len(group) > 1:  # retry one by one so only the culprit gets the error
            return [r for i in group for r in _run_group(run, requests, names, [i])]
        message = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return [f"inference failed on {names[0]} shape {list(feeds[names[0]].shape)}: {message}"]
    sizes = np.cumsum([requests[i][names[0]].shape[0] for i in group])[:-1]  # type: ignore[union-attr]
    return list(np.split(outputs, sizes))


def resolve_threads(value: str, instances: int = 1) -> int:
    """intra_op_threads config parameter -> thread count; "0" or "" = the cores this process may
    run on (affinity-aware, so a CPU-limited container is respected) shared among the model's
    `instances`, at least one each."""
    try:
        threads = int(value or 0)
    except ValueError:
        raise ValueError(f"intra_op_threads must be an integer, got {value!r}") from None
    if threads < 0:
        raise ValueError(f"intra_op_threads must be >= 0, got {threads}")
    return threads or max(1, len(os.sched_getaffinity(0)) // instances)


def resolve_flag(name: str, value: str) -> bool:
    """A true/false config parameter -> bool ("" = true, the default of every flag here)."""
    if value.strip().lower() in ("", "true", "1", "yes", "on"):
        return True
    if value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


_ORT_TYPES = {"tensor(uint8)": np.dtype(np.uint8), "tensor(float)": np.dtype(np.float32),
              "tensor(int64)": np.dtype(np.int64)}


class OrtRunner:
    """An ONNX Runtime session on one .onnx file, with the graph's input specs and output name."""

    def __init__(self, onnx_path: str | Path, intra_op_threads: int, memory_arena: bool = True) -> None:
        import onnxruntime as ort  # imported here so the pure helpers above need numpy only

        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `make engine` to export and install it")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1  # one conv chain: parallelism is within ops
        # Idle worker threads must not busy-wait: they would steal the CPU the window stub,
        # tritonserver and the client need (+27% served frames per CPU-second, RESULTS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The arena keeps the peak of the largest window served (1.9 GB after one 1080p denoise
        # window) and reuses it, ~15% faster at 1080p than returning it after every call.
        options.enable_cpu_mem_arena = memory_arena
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.specs = [InputSpec(i.name, _ORT_TYPES[i.type], tuple(i.shape)) for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output_name], feeds)[0]

    def execute(self, requests: Sequence[Arrays]) -> list[np.ndarray | str]:
        return run_requests(self.run, requests, self.specs)
