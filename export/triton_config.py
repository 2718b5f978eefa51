"""Every config.pbtxt of the model repository, built from training/contract.py as Triton's own
`ModelConfig` protobuf and written with `text_format`, so that serving and training cannot drift
apart and no config is ever patched as text.

Per task three models: the ensemble `<task>`, the window model `<task>_window` (Python backend,
sequence batcher, decoupled) and the network `<task>_net`, either the CPU default (Python backend
running the ONNX with ONNX Runtime, committed to git) or a `tensorrt_plan` (written only by
`make engine` on a host that built a plan). WindowOptions and NetOptions hold what is not in the
contract: where each model runs and the server limits.

    python -m export.triton_config [--repository model_repository]   # rewrite the committed configs
    python -m export.triton_config --check                            # exit 1 if any differs

Only tasks already in the repository are written: a task joins it (with its checkpoint) through
`make engine`, because tritonserver refuses to start on a model it cannot load.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.files import atomic_write
from training.contract import (CPU_BATCH, FRAME, FRAME_INDEX, MASK, MAX_BATCH_SIZE, MAX_SIDE, RESTORED, TASKS,
                               Task)

ROOT = Path(__file__).resolve().parents[1]
ONNX_FILE = "model.onnx"
PLAN_FILE = "model.plan"
# Long enough to catch frames of other streams arriving together, short against a frame's
# compute time (milliseconds even for the small network).
QUEUE_DELAY_US = 500
# A window model keeps at most this many live streams whatever its config says: each costs a
# ring buffer, and the sequence batcher itself tracks up to MAX_CANDIDATE_SEQUENCES.
MAX_STREAMS_CEILING = 256
MAX_CANDIDATE_SEQUENCES = 1024
HEADER = "# Written by `python -m export.triton_config` from training/contract.py: edit that, not this.\n"
DESCRIPTIONS = {
    "ensemble": "# Ensemble: frames in, restored frames out (decoupled, gRPC streaming; one sequence per file).\n",
    "window": ("# Per-stream sliding window (1/windowing.py); parameter window = frames held per stream.\n"
               "# Decoupled: a request yields 0..n responses. Limits (max_side, max_streams, max_held_mib)\n"
               "# are checked before a frame is held; a refused request gets an error, nothing else changes.\n"),
    "net": ("# The network. No queue policy by default: with one (`make engine ENGINE_ARGS='--queue-timeout-s N'`)\n"
            "# Triton 2.51's dynamic batcher holds some requests ~500 ms (3x fewer direct calls per second),\n"
            "# and with max_queue_size set it leaves ensemble requests hanging when the full queue rejects them.\n"),
}
PLANE_CHANNELS = {FRAME: 3, MASK: 1}


@dataclass(frozen=True)
class WindowOptions:
    """What `<task>_window`'s config holds beyond the contract."""

    gpu: bool = False           # ring buffers on the GPU beside a TensorRT plan
    idle_timeout_s: float = 60  # Triton drops an idle sequence after this; the model reaps on the same clock
    max_streams: int = 64       # live streams held; a new one past this is refused
    max_held_mib: int = 4096    # memory all streams' ring buffers may take together
    max_side: int = MAX_SIDE    # largest frame height or width accepted

    def __post_init__(self) -> None:
        if not 1 <= self.max_streams <= MAX_STREAMS_CEILING:
            raise ValueError(f"max_streams must be in 1..{MAX_STREAMS_CEILING}, got {self.max_streams}")
        if self.idle_timeout_s <= 0 or self.max_held_mib < 1 or self.max_side < 1:
            raise ValueError(f"idle_timeout_s, max_held_mib and max_side must be positive: {self}")


@dataclass(frozen=True)
class NetOptions:
    """What `<task>_net`'s config holds beyond the contract."""

    backend: str = "onnxruntime"  # or "tensorrt"
    max_side: int = MAX_SIDE      # the TensorRT profile's maximum; clients tile larger frames
    max_batch: int = MAX_BATCH_SIZE  # the TensorRT profile's maximum (the backend refuses more)
    cpu_instances: int = 2        # ONNX Runtime: net instances, each a process with its own session
                                  # taking one window per call
    intra_op_threads: int = 0     # ONNX Runtime, per instance: 0 = the cores the server process may use,
                                  # shared among the instances
    cpu_memory_arena: bool = True  # ONNX Runtime keeps its peak memory for reuse (faster on large frames)
    queue_timeout_s: float = 0    # > 0: a request still queued after this is rejected (see DESCRIPTIONS["net"])

    def __post_init__(self) -> None:
        if self.backend not in ("onnxruntime", "tensorrt"):
            raise ValueError(f"backend must be onnxruntime or tensorrt, got {self.backend!r}")
        if self.queue_timeout_s < 0:
            raise ValueError(f"queue_timeout_s must be >= 0 (0 = no queue policy), got {self.queue_timeout_s}")
        if self.cpu_instances < 1:
            raise ValueError(f"cpu_instances must be >= 1, got {self.cpu_instances}")


def _dtype(name: str) -> int:
    """The config enum of a contract type name ("UINT8" -> TYPE_UINT8)."""
    return mc.DataType.Value(f"TYPE_{name}")


def _tensor(name: str, dtype: int, dims: list[int]) -> mc.ModelInput:
    return mc.ModelInput(name=name, data_type=dtype, dims=dims)


def _output(name: str, dtype: int, dims: list[int]) -> mc.ModelOutput:
    return mc.ModelOutput(name=name, data_type=dtype, dims=dims)


def _frame_planes(task: Task) -> list[str]:
    """The per-frame inputs a client streams: FRAME, and MASK for masked tasks."""
    return [FRAME, *([MASK] if task.masked else [])]


def _set_parameters(config: mc.ModelConfig, values: dict[str, object]) -> None:
    for key, value in values.items():
        config.parameters[key].string_value = (str(value).lower() if isinstance(value, bool)
                                               else f"{value:g}" if isinstance(value, float) else str(value))


def ensemble_config(task: Task, max_batch: int | None = None) -> mc.ModelConfig:
    """`<task>`: the window model's outputs wired into the net's inputs. Triton refuses an
    ensemble whose max_batch_size exceeds a step's: `max_batch` is at most the net's and the
    window model's (default: CPU_BATCH, the ONNX Runtime net's)."""
    max_batch = CPU_BATCH if max_batch is None else max_batch
    config = mc.ModelConfig(name=task.name, platform="ensemble", max_batch_size=max_batch)
    config.input.extend(_tensor(p, mc.TYPE_UINT8, [-1, -1, PLANE_CHANNELS[p]]) for p in _frame_planes(task))
    config.output.extend([_output(RESTORED, mc.TYPE_UINT8, [-1, -1, 3]), _output(FRAME_INDEX, mc.TYPE_INT64, [1])])
    window = config.ensemble_scheduling.step.add(model_name=task.window_model, model_version=-1)
    net = config.ensemble_scheduling.step.add(model_name=task.net_model, model_version=-1)
    for plane in _frame_planes(task):
        window.input_map[plane] = plane
    for name in task.net_inputs:
        window.output_map[name] = net.input_map[name] = name.lower()
    window.output_map[FRAME_INDEX] = FRAME_INDEX
    net.output_map[RESTORED] = RESTORED
    return config


def window_config(task: Task, options: WindowOptions = WindowOptions()) -> mc.ModelConfig:
    """`<task>_window`: holds `task.window` frames per stream, sends the net's `net_frames`.
    On GPU hosts its ring buffers live on the GPU (KIND_GPU, device cuda, inputs left where Triton
    put them) so a frame crosses PCIe once and windows reach the plan by DLPack."""
    # One stream's frame per call: the ensemble's batch may not exceed a step's (CPU_BATCH on CPU).
    config = mc.ModelConfig(name=task.window_model, backend="python", max_batch_size=CPU_BATCH)
    config.input.extend(_tensor(p, mc.TYPE_UINT8, [-1, -1, PLANE_CHANNELS[p]]) for p in _frame_planes(task))
    config.output.extend(_output(name, _dtype(spec.dtype), list(spec.dims)) for name, spec in task.net_inputs.items())
    config.output.append(_output(FRAME_INDEX, mc.TYPE_INT64, [1]))
    batching = config.sequence_batching
    batching.max_sequence_idle_microseconds = round(options.idle_timeout_s * 1e6)
    batching.oldest.max_candidate_sequences = MAX_CANDIDATE_SEQUENCES
    batching.oldest.max_queue_delay_microseconds = 0
    kinds = mc.ModelSequenceBatching.Control
    for name, kind in (("START", kinds.CONTROL_SEQUENCE_START), ("END", kinds.CONTROL_SEQUENCE_END)):
        batching.control_input.add(name=name).control.add(kind=kind, int32_false_true=[0, 1])
    batching.control_input.add(name="CORRID").control.add(kind=kinds.CONTROL_SEQUENCE_CORRID, data_type=mc.TYPE_UINT64)
    config.model_transaction_policy.decoupled = True
    config.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_GPU if options.gpu else mc.ModelInstanceGroup.KIND_CPU)
    _set_parameters(config, {
        "window": task.window,
        "idle_timeout_s": float(options.idle_timeout_s), "max_streams": options.max_streams,
        "max_held_mib": options.max_held_mib, "max_side": options.max_side,
        **({"device": "cuda", "FORCE_CPU_ONLY_INPUT_TENSORS": "no"} if options.gpu else {}),
    })
    return config


def net_config(task: Task, options: NetOptions = NetOptions()) -> mc.ModelConfig:
    """`<task>_net`: the Python backend running 1/model.onnx with ONNX Runtime (CPU), or Triton's
    TensorRT backend loading 1/model.plan (GPU)."""
    max_batch = options.max_batch if options.backend == "tensorrt" else CPU_BATCH
    config = mc.ModelConfig(name=task.net_model, max_batch_size=max_batch)
    config.input.extend(_tensor(name, _dtype(spec.dtype), list(spec.dims)) for name, spec in task.net_inputs.items())
    config.output.append(_output(RESTORED, mc.TYPE_UINT8, [-1, -1, 3]))
    batching = config.dynamic_batching
    batching.max_queue_delay_microseconds = QUEUE_DELAY_US
    if options.queue_timeout_s > 0:  # opt-in: any queue policy brings the 2.51 stalls (DESCRIPTIONS["net"])
        policy = batching.default_queue_policy
        policy.timeout_action = mc.ModelQueuePolicy.REJECT
        policy.default_timeout_microseconds = round(options.queue_timeout_s * 1e6)
        policy.allow_timeout_override = True  # a request may only shorten it
    parameters: dict[str, object] = {"max_side": options.max_side}
    if options.backend == "tensorrt":
        config.platform = "tensorrt_plan"
        config.default_model_filename = PLAN_FILE
        config.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_GPU)
    else:
        config.backend = "python"
        config.instance_group.add(count=options.cpu_instances, kind=mc.ModelInstanceGroup.KIND_CPU)
        # Instances finish out of order; the ensemble pairs each RESTORED with the window model's
        # FRAME_INDEX in order, so without this, restored frames came back under other indices.
        batching.preserve_ordering = True
        parameters.update(onnx_file=ONNX_FILE, intra_op_threads=options.intra_op_threads,
                          cpu_memory_arena=options.cpu_memory_arena)
    _set_parameters(config, parameters)
    return config


def render(config: mc.ModelConfig) -> str:
    """config.pbtxt text: the header, a line on what the model is, the protobuf text."""
    kind = "ensemble" if config.platform == "ensemble" else "window" if config.HasField("sequence_batching") else "net"
    return HEADER + DESCRIPTIONS[kind] + text_format.MessageToString(config, use_short_repeated_primitives=True)


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def write(path: Path, config: mc.ModelConfig) -> Path:
    """Write `config` to `path` atomically (Triton may be polling the repository)."""
    return atomic_write(path, render(config))


def update_parameters(path: Path, values: dict[str, object]) -> None:
    """Set the parameters `values` in the config.pbtxt at `path` (others are kept)."""
    config = parse(path.read_text())
    _set_parameters(config, values)
    write(path, config)


def committed_configs(repository: Path, checkpoints: Path = ROOT / "training" / "checkpoints") -> dict[Path, str]:
    """config.pbtxt path -> text of every model of the tasks in `repository`, CPU defaults."""
    configs = {}
    for task in TASKS.values():
        if not (repository / task.name).is_dir():
            continue
        for name, config in ((task.name, ensemble_config(task)),
                             (task.window_model, window_config(task)),
                             (task.net_model, net_config(task))):
            configs[repository / name / "config.pbtxt"] = render(config)
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.triton_config",
        description="Write the CPU-default config.pbtxt of every model (ensemble, window, net) of the "
                    f"tasks in the repository (tasks: {', '.join(TASKS)}) from training/contract.py.")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository",
                        help="Triton model repository (default: model_repository)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming each config that differs from the generated one")
    args = parser.parse_args(argv)
    configs = committed_configs(args.repository)
    if not configs:
        print(f"triton_config: no task in {args.repository}", file=sys.stderr)
        return 1
    if args.check:
        stale = [p for p, text in configs.items() if not p.is_file() or p.read_text() != text]
        for path in stale:
            print(f"triton_config: {path} differs from the generated config "
                  "(run python -m export.triton_config)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in configs.items():
        atomic_write(path, text)
        print(f"triton_config: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
