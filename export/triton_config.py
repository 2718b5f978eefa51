"""config.pbtxt of every `<task>_net` model, written from training/contract.py so that serving
and training cannot drift apart.

Two flavours share one tensor block: the CPU default (Python backend running the ONNX with ONNX
Runtime, committed to git) and the GPU one (platform tensorrt_plan, written only by
`make engine` on a host that built a plan).

    python -m export.triton_config [--repository model_repository]   # rewrite the CPU defaults

Only tasks already in the repository are written: a task joins it (with its checkpoint) through
`make engine`, because tritonserver refuses to start on a model it cannot load.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from export.files import atomic_write
from training.contract import MAX_BATCH_SIZE, MAX_SIDE, RESTORED, TASKS, Task

ONNX_FILE = "model.onnx"
PLAN_FILE = "model.plan"
# Long enough to catch frames of other streams arriving together, short against a frame's
# compute time (milliseconds even for the small network).
QUEUE_DELAY_US = 500
HEADER = "# Written by export/triton_config.py from training/contract.py; `make engine` rewrites it.\n"


def _tensor(name: str, dims: list[int]) -> str:
    return (f"  {{\n    name: \"{name}\"\n    data_type: TYPE_UINT8\n"
            f"    dims: [ {', '.join(str(d) for d in dims)} ]\n  }}")


def tensor_block(task: Task, max_batch: int = MAX_BATCH_SIZE) -> str:
    """max_batch_size, inputs and output of `<task>_net` (dims exclude the batch dimension)."""
    inputs = [_tensor(name, [task.window, -1, -1, channels]) for name, channels in task.net_inputs.items()]
    joined = ",\n".join(inputs)
    return (f"max_batch_size: {max_batch}\n"
            f"input [\n{joined}\n]\n"
            f"output [\n{_tensor(RESTORED, [-1, -1, 3])}\n]\n"
            f"dynamic_batching {{\n  max_queue_delay_microseconds: {QUEUE_DELAY_US}\n}}\n")


def _instance_group(kind: str) -> str:
    return f"instance_group [\n  {{\n    count: 1\n    kind: {kind}\n  }}\n]\n"


def _parameter(key: str, value: object) -> str:
    return f"  {{\n    key: \"{key}\"\n    value: {{ string_value: \"{value}\" }}\n  }}"


def onnxruntime_config(task: Task, onnx_file: str = ONNX_FILE, intra_op_threads: int = 0,
                       max_side: int = MAX_SIDE) -> str:
    """CPU config: Python backend (1/model.py) running `onnx_file` with ONNX Runtime.
    intra_op_threads 0 means every core the server process may use."""
    return (HEADER + f"name: \"{task.net_model}\"\nbackend: \"python\"\n" + tensor_block(task)
            + _instance_group("KIND_CPU")
            + "parameters [\n" + ",\n".join([_parameter("onnx_file", onnx_file),
                                                _parameter("intra_op_threads", intra_op_threads),
                                                _parameter("max_side", max_side)]) + "\n]\n")


def tensorrt_config(task: Task, plan_file: str = PLAN_FILE, max_side: int = MAX_SIDE,
                    max_batch: int = MAX_BATCH_SIZE) -> str:
    """GPU config: Triton's TensorRT backend loading `plan_file` from the version directory;
    max_side and max_batch are the plan's profile maximum (the backend refuses a larger
    max_batch_size; clients read max_side and tile larger frames)."""
    return (HEADER + f"name: \"{task.net_model}\"\nplatform: \"tensorrt_plan\"\n"
            f"default_model_filename: \"{plan_file}\"\n" + tensor_block(task, max_batch)
            + _instance_group("KIND_GPU")
            + "parameters [\n" + _parameter("max_side", max_side) + "\n]\n")


def config_path(repository: Path, task: Task) -> Path:
    return repository / task.net_model / "config.pbtxt"


def write_config(repository: Path, task: Task, text: str) -> Path:
    """Write `text` as `<repository>/<task>_net/config.pbtxt` (atomically: Triton may be polling)."""
    return atomic_write(config_path(repository, task), text)


_MAX_BATCH_LINE = re.compile(r"^max_batch_size: \d+$", re.MULTILINE)


def write_ensemble_config(repository: Path, task: Task, max_batch: int) -> Path | None:
    """Set the ensemble `<task>`'s max_batch_size to its net's (Triton refuses an ensemble whose
    max_batch_size exceeds a step's); None where the repository has no ensemble config."""
    path = repository / task.name / "config.pbtxt"
    if not path.is_file():
        return None
    text = path.read_text()
    if not _MAX_BATCH_LINE.search(text):
        raise ValueError(f"{path} has no 'max_batch_size: N' line to set")
    return atomic_write(path, _MAX_BATCH_LINE.sub(f"max_batch_size: {max_batch}", text, count=1))


GPU_WINDOW_PARAMETERS = (
    'parameters { key: "device" value: { string_value: "cuda" } }\n'
    'parameters { key: "FORCE_CPU_ONLY_INPUT_TENSORS" value: { string_value: "no" } }\n'
)


ALIGN_PARAMETER = 'parameters {{ key: "align" value: {{ string_value: "{}" }} }}\n'
_ALIGN_LINE = re.compile(r'parameters \{ key: "align" value: \{ string_value: "[^"]*" \} \}\n?')


def window_aligns(config: str) -> bool:
    """Whether a window config (config.pbtxt text) has the window model align its windows."""
    return ALIGN_PARAMETER.format("true") in config


def window_config(committed: str, gpu: bool, align: bool = False) -> str:
    """`<task>_window`'s config placed for the net's backend: on GPU hosts its ring buffers live
    on the GPU (KIND_GPU, device cuda, inputs left where Triton put them) so a frame crosses PCIe
    once and windows reach the plan by DLPack; otherwise the committed CPU config. `align`: the
    network wants its neighbours motion-compensated (NetConfig.aligned), which the window model
    then does (training/alignment.py, copied beside it by `make engine`)."""
    text = _ALIGN_LINE.sub("", committed.replace(GPU_WINDOW_PARAMETERS, "")).replace("KIND_GPU", "KIND_CPU")
    text += ALIGN_PARAMETER.format("true" if align else "false")
    if gpu:
        text = text.replace("KIND_CPU", "KIND_GPU") + GPU_WINDOW_PARAMETERS
    return text


def write_window_config(repository: Path, task: Task, gpu: bool, align: bool = False) -> Path | None:
    """Place `<task>_window` for the backend and the network's alignment; None where there is no
    window config to place (a repository being assembled) and the CPU default is wanted anyway."""
    path = repository / task.window_model / "config.pbtxt"
    if not path.is_file():
        if gpu or align:
            raise FileNotFoundError(f"{path} is missing: the window model needs its config")
        return None
    return atomic_write(path, window_config(path.read_text(), gpu, align))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.triton_config",
        description="Rewrite the CPU-default config.pbtxt (Python backend + ONNX Runtime) of every "
                    f"<task>_net model in the repository (tasks: {', '.join(TASKS)}) from "
                    "training/contract.py.")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"),
                        help="Triton model repository to write into (default: model_repository)")
    args = parser.parse_args(argv)
    present = [t for t in TASKS.values() if (args.repository / t.net_model).is_dir()]
    if not present:
        print(f"triton_config: no <task>_net model in {args.repository}", file=sys.stderr)
        return 1
    for task in present:
        print(f"triton_config: wrote {write_config(args.repository, task, onnxruntime_config(task))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
