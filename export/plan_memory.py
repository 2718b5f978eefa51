"""The TensorRT optimisation profile of each task, and what its plan needs at the profile's maximum:
the largest tensor (TensorRT 10 refuses most layers on tensors of 2^31 elements or more) and the
GPU memory Triton's TensorRT backend holds for it (activations and I/O are allocated for the
maximum shapes, whatever the request).

Both are computed from the exported ONNX by shape inference with the inputs fixed at the
profile's maximum, on CPU, before any build:

    python -m export.plan_memory [--repository model_repository] [--budget-gib 16]

Memory estimate (an estimate: TensorRT's own number, `device_memory_size_v2`, is printed by the
build on a GPU host): activations = the peak, over the graph in its topological order, of the
tensors alive at once (a tensor lives from its producer to its last consumer), at 2 bytes per
float element in FP16 (4 in the layers an FP16 plan keeps in FP32); plus the uint8 inputs and
output at their maximum shapes; plus the weights.
TensorRT fuses layers (fewer live tensors) but needs tactic scratch space, so the budget keeps a
margin.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from export.fp32_layers import PREFIX as FP32_PREFIX
from training.contract import TASKS, Task

FOLD_LIMIT = 4096              # elements: shape arithmetic (pads, reshape targets) is folded, data-sized
                               # constants (a sampling grid at 2160x2160: 1 GB, minutes) are left to inference
ELEMENT_LIMIT = 2**31          # TensorRT 10: most layers reject tensors with this many elements or more
GIB = 1 << 30
DEFAULT_BUDGET_GIB = 16.0      # all four tasks' plans together on one GPU (a 24 GB card keeps room for CUDA contexts)


@dataclass(frozen=True)
class TaskProfile:
    """Largest batch and input side of a task's plan (sr4's side is its input's: the output is 4x)."""

    max_batch: int
    max_side: int


# Checked by `python -m export.plan_memory` against DEFAULT_BUDGET_GIB in FP16 (numbers in
# export/README_gpu.md; 13.3 GiB together, with the FP32-pinned layers at 4 bytes). Every task keeps 2160-pixel sides (larger frames are
# tiled by the client) except sr4, whose feature maps are at 2x its input's resolution: at batch 8
# and 2160 its largest tensor is 3.0e9 elements, over TensorRT's limit. At 1080 a 1080p frame is
# two tiles (540-pixel tiles would be twelve, 1.7x the pixels through the net); batch 2 keeps it
# at the memory of batch 8 x 540. denoise's flow runs in FP32: batch 6 would need 5.4 GiB.
PROFILES: dict[str, TaskProfile] = {
    "denoise": TaskProfile(max_batch=4, max_side=2160),
    # denoise's graph with other weights: at batch 4 too the five would need 15.9 GiB, no margin left.
    "deblock": TaskProfile(max_batch=2, max_side=2160),
    "deblur": TaskProfile(max_batch=4, max_side=2160),
    "sr4": TaskProfile(max_batch=2, max_side=1080),
    # inpaint's graph takes 21 frames and propagates over 20 neighbours at full resolution: at
    # batch 4 and 2160 it alone would hold 15.1 GiB (largest tensor 1.96e9 elements).
    "inpaint": TaskProfile(max_batch=1, max_side=2160),
}

_ITEMSIZE = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.DOUBLE: 8,
             onnx.TensorProto.UINT8: 1, onnx.TensorProto.INT8: 1, onnx.TensorProto.BOOL: 1,
             onnx.TensorProto.INT32: 4, onnx.TensorProto.INT64: 8}
_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


def profile_for(task: Task) -> TaskProfile:
    return PROFILES[task.name]


def max_shapes(task: Task, profile: TaskProfile) -> dict[str, tuple[int, ...]]:
    """Every network input at the profile's maximum ([N, T, H, W, C]; deblur's kernel [N, K, K])."""
    return {name: tensor.shape(profile.max_batch, profile.max_side, profile.max_side)
            for name, tensor in task.net_inputs.items()}


def _fix_inputs(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> None:
    for graph_input in model.graph.input:
        if graph_input.name not in shapes:
            continue
        dims = graph_input.type.tensor_type.shape.dim
        if len(dims) != len(shapes[graph_input.name]):
            raise ValueError(f"input {graph_input.name} has rank {len(dims)}, profile gives "
                             f"{list(shapes[graph_input.name])}")
        for dim, value in zip(dims, shapes[graph_input.name]):
            dim.Clear()
            dim.dim_value = value


def _known_shapes(model: onnx.ModelProto) -> dict[str, tuple[tuple[int, ...], int]]:
    """(shape, elem_type) of every tensor whose shape inference found all dims."""
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    known = {}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in tensor_type.shape.dim):
            known[info.name] = (tuple(d.dim_value for d in tensor_type.shape.dim), tensor_type.elem_type)
    return known


def _fold_shape_arithmetic(model: onnx.ModelProto) -> bool:
    """Replace every node computable from constants and known shapes (Shape -> Gather -> Mod ->
    Pad's pads, ...) by its value, so that shape inference sees concrete pads and reshape
    targets. True when something was folded."""
    known = _known_shapes(model)
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    kept, folded = [], False
    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        large = any(np.prod(known[out][0], dtype=np.int64) > FOLD_LIMIT for out in node.output if out in known)
        if node.op_type == "Shape" and node.input[0] in known:
            shape = np.array(known[node.input[0]][0], dtype=np.int64)
            attrs = {a.name: a.i for a in node.attribute}
            result = [shape[attrs.get("start", 0):attrs.get("end", len(shape))]]
        elif (inputs or node.op_type == "Constant") and all(name in values for name in inputs) and not large:
            result = ReferenceEvaluator(node).run(None, {name: values[name] for name in inputs})
        else:
            kept.append(node)
            continue
        if any(np.asarray(value).size > FOLD_LIMIT for value in result):
            kept.append(node)
            continue
        for name, value in zip(node.output, result):
            values[name] = np.asarray(value)
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        folded = True
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return folded


def infer_at(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy of `model` with its inputs fixed at `shapes`, shape arithmetic folded, and every
    tensor's shape inferred; ValueError naming the tensors left unknown."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    _fix_inputs(fixed, shapes)
    while _fold_shape_arithmetic(fixed):
        pass
    inferred = shape_inference.infer_shapes(fixed, data_prop=True)
    known = _known_shapes(inferred)
    missing = [out for node in inferred.graph.node for out in node.output if out and out not in known]
    if missing:
        raise ValueError(f"shape inference left {len(missing)} tensor(s) unknown at {shapes}: {missing[:5]}")
    return inferred


@dataclass(frozen=True)
class PlanFootprint:
    """What a plan needs at its profile's maximum."""

    largest_tensor: str
    largest_elements: int
    activation_bytes: int   # peak of simultaneously live intermediate tensors
    io_bytes: int           # inputs + output at their maximum shapes
    weight_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.activation_bytes + self.io_bytes + self.weight_bytes


def _nbytes(shape: tuple[int, ...], elem_type: int, precision: str) -> int:
    itemsize = 2 if precision == "fp16" and elem_type in _FLOATS else _ITEMSIZE.get(elem_type, 4)
    return int(np.prod(shape, dtype=np.int64)) * itemsize


def footprint(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]], precision: str = "fp16") -> PlanFootprint:
    """Largest tensor and memory estimate of `model` with inputs at `shapes` (see the module doc)."""
    inferred = infer_at(model, shapes)
    known = _known_shapes(inferred)
    constants = {init.name for init in inferred.graph.initializer}
    graph_io = {i.name for i in inferred.graph.input} | {o.name for o in inferred.graph.output}
    last_use: dict[str, int] = {}
    for step, node in enumerate(inferred.graph.node):
        for name in node.input:
            last_use[name] = step
    live: dict[str, int] = {}
    peak = 0
    for step, node in enumerate(inferred.graph.node):
        for name in node.output:
            if name and name not in graph_io:
                # Layers pinned to FP32 (export/fp32_layers.py) keep 4-byte floats in an FP16 plan.
                live[name] = _nbytes(*known[name], "fp32" if node.name.startswith(FP32_PREFIX) else precision)
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last_use.get(n, -1) <= step]:
            del live[name]
    elements = {name: int(np.prod(shape, dtype=np.int64)) for name, (shape, _) in known.items() if name not in constants}
    largest = max(elements, key=elements.get)
    weights = sum(_nbytes(tuple(init.dims), init.data_type, precision) for init in model.graph.initializer)
    io = sum(_nbytes(*known[name], precision) for name in graph_io)
    return PlanFootprint(largest, elements[largest], peak, io, weights)


def check_profiles(repository: Path, tasks: list[Task], budget_gib: float,
                   precision: str = "fp16") -> tuple[dict[str, PlanFootprint], list[str]]:
    """Footprint of every task's ONNX at its profile's maximum, and the problems: a tensor at or
    above ELEMENT_LIMIT, or a total above the budget."""
    footprints, problems = {}, []
    for task in tasks:
        onnx_path = repository / task.net_model / "1" / "model.onnx"
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path} is missing: run `make engine` first")
        fp = footprint(onnx.load(str(onnx_path)), max_shapes(task, profile_for(task)), precision)
        footprints[task.name] = fp
        if fp.largest_elements >= ELEMENT_LIMIT:
            problems.append(f"{task.name}: tensor {fp.largest_tensor} has {fp.largest_elements:.3g} elements "
                            f"(TensorRT's limit is 2^31 = {ELEMENT_LIMIT:.3g})")
    total = sum(fp.total_bytes for fp in footprints.values())
    if total > budget_gib * GIB:
        problems.append(f"all tasks together need {total / GIB:.1f} GiB, over the {budget_gib:g} GiB budget")
    return footprints, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.plan_memory",
        description="Largest tensor and estimated GPU memory of each task's TensorRT plan at its "
                    "profile's maximum, from the exported ONNX (no GPU needed).")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--budget-gib", type=float, default=DEFAULT_BUDGET_GIB,
                        help=f"GPU memory for all tasks' plans together (default {DEFAULT_BUDGET_GIB:g})")
    parser.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    parser.add_argument("--task", action="append", choices=list(TASKS), help="only these tasks (default: all)")
    args = parser.parse_args(argv)
    tasks = [TASKS[name] for name in (args.task or TASKS)]
    footprints, problems = check_profiles(args.repository, tasks, args.budget_gib, args.precision)
    print(f"{'task':8} {'batch':>5} {'side':>5} {'largest tensor':>15} {'activations':>12} {'I/O':>8} "
          f"{'weights':>9} {'total':>8}  ({args.precision})")
    for name, fp in footprints.items():
        p = PROFILES[name]
        print(f"{name:8} {p.max_batch:5d} {p.max_side:5d} {fp.largest_elements:15.3g} "
              f"{fp.activation_bytes / GIB:9.2f} GiB {fp.io_bytes / GIB:4.2f} GiB {fp.weight_bytes / 2**20:5.1f} MiB "
              f"{fp.total_bytes / GIB:4.2f} GiB")
    total = sum(fp.total_bytes for fp in footprints.values())
    print(f"total {total / GIB:.2f} GiB of {args.budget_gib:g} GiB budget")
    for problem in problems:
        print(f"plan_memory: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
