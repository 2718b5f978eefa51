"""Will TensorRT's ONNX parser take this graph? A check of an exported ONNX against the operators,
types and restrictions of the TensorRT in the GPU image (nvcr.io/nvidia/tritonserver:24.10-py3 =
TensorRT 10.5), on CPU, before a GPU host finds out in the middle of `make engine`:

    python -m export.tensorrt_ops [--repository model_repository] [--task denoise ...]

Source of the tables below: onnx/onnx-tensorrt docs/operators.md at commit
0137504e2b25fe5253bd85d26b073378fb67805b, whose header reads "TensorRT 10.6 supports operators in the
inclusive range of opset 9 to opset 22". No stored copy says 10.5; 10.6 is the nearest 10.x. Its
docs/Changelog.md at the same commit lists for 10.6 only parser plumbing (ONNX submodule 1.17,
plugins, optional outputs) and no operator, so 10.5's operator support is 10.6's: STFT came in
10.5, Pad's tensor `axes` in 10.4, Slice's in 10.3, DeformConv in 10.1, Pad `wrap` in 10.0. The
opset ceiling is the exception: 10.6's 22 came with ONNX 1.17, and 10.0's table says 20, so we
hold graphs to 9..20. DFT is "N" there (and still in 10.15's table): a spectral step must be
written with Conv/MatMul instead.

Rows are transcribed, not parsed at run time (no network on the build machine). "Supported
Types" is checked on each node's first input (the data operand: outputs and index/shape operands
have their own types, e.g. Resize's INT64 `sizes` or Equal's BOOL output). Restrictions that do not
show in the table but in the TensorRT API are marked so (GridSample's modes: IGridSampleLayer
has LINEAR/NEAREST/CUBIC interpolation and FILL/CLAMP/REFLECT sampling).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.inliner
from onnx import TensorProto, shape_inference

from training.contract import TASKS, Task

TENSORRT_VERSION = "10.5"
SOURCE = "onnx/onnx-tensorrt docs/operators.md @ 0137504e (TensorRT 10.6 table, nearest stored to 10.5)"
OPSET_MIN, OPSET_MAX = 9, 20

_F = ("FLOAT", "FLOAT16", "BFLOAT16")
_FI = (*_F, "INT32", "INT64")
_FIB = (*_FI, "BOOL")
_TYPE_GROUPS = {
    _F: """Acos Acosh Asin Asinh Atan Atanh AveragePool BatchNormalization Ceil Celu Clip Conv
        ConvTranspose Cos Cosh CumSum Dropout Einsum Elu Erf Exp Floor Gemm GlobalAveragePool
        GlobalLpPool GlobalMaxPool GroupNormalization GRU HardSigmoid HardSwish Hardmax ImageScaler
        InstanceNormalization IsInf LayerNormalization LeakyRelu Log LogSoftmax LRN LSTM
        LpNormalization LpPool MatMul MaxPool MeanVarianceNormalization ParametricSoftplus Pow PRelu
        QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Reciprocal Resize
        RNN Round ScaledTanh Scan Selu Sigmoid Sin Sinh Softmax Softplus Softsign Sqrt Tan Tanh
        ThresholdedRelu Upsample""",
    _FI: """Abs Add ArgMax ArgMin DepthToSpace Div Equal Greater GreaterOrEqual IsNaN Less LessOrEqual
        Max Min Mod Mul Neg Pad Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
        ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Scatter ScatterElements
        ScatterND Shrink Sign SpaceToDepth Sub Sum TopK""",
    _FIB: """Concat Constant ConstantOfShape Expand EyeLike Flatten Gather GatherElements GatherND
        Identity If Loop OneHot Reshape ReverseSequence Shape Size Slice Split Squeeze Tile Transpose
        Trilu Unsqueeze Where""",
    ("BOOL",): "And Not Or Xor",
    ("FLOAT", "FLOAT16"): "DeformConv GridSample Mish NonMaxSuppression NonZero RoiAlign",
    ("FLOAT",): "STFT",
    (*_FI, "UINT8", "BOOL"): "Cast CastLike",
    (*_FI, "FLOAT8E4M3FN"): "Mean",
    (*_FI, "INT8"): "Gelu",
    ("INT8", "FLOAT8E4M3FN", "INT4"): "DequantizeLinear",
    (): "BlackmanWindow HammingWindow HannWindow",  # "Y" with no types listed: not type-checked
}
# Operator -> the data types its first input may have.
SUPPORTED: dict[str, tuple[str, ...]] = {op: types for types, ops in _TYPE_GROUPS.items() for op in ops.split()}
# Rows marked "N".
UNSUPPORTED = frozenset("""AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor
    Col2Im CenterCropPad Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear
    ImageDecoder MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial
    NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul
    RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert
    SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer
    StringSplit TfIdfVectorizer Unique""".split())
NOTES = {"DFT": "DFT is not in TensorRT 10.5's parser (the issue expects it from 11.2): build spectral "
                "steps from Conv/MatMul"}

# "TensorRT supports the following ONNX data types: DOUBLE, FLOAT32, FLOAT16, BFLOAT16, INT32, INT64,
# FP8, INT8, INT4, UINT8, and BOOL"; DOUBLE is cast down to FLOAT (clamped), INT8/INT4/FP8 only
# through quantization, "UINT8 is only supported as network input or output tensor types".
TENSOR_TYPES = frozenset({"FLOAT", "FLOAT16", "BFLOAT16", "INT32", "INT64", "BOOL"})
EDGE_ONLY_TYPES = frozenset({"UINT8"})

RESIZE_MODES = {"nearest", "linear"}
RESIZE_COORDINATES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
RESIZE_NEAREST = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
GRID_MODES = {"bilinear", "nearest", "bicubic", "linear", "cubic"}  # opset 16 names and opset 20's
GRID_PADDING = {"zeros", "border", "reflection"}
PAD_MODES = {"constant", "reflect", "edge", "wrap"}                  # edge/reflect since 8.2, wrap since 10.0
POOLS = {"AveragePool", "MaxPool", "LpPool"}
# Inputs that "must be an initializer" (or "a constant tensor"): operator -> input index.
CONSTANT_INPUTS = {**{op: 1 for op in SUPPORTED if op.startswith("Reduce")},
                   "Squeeze": 1, "Unsqueeze": 1, "CumSum": 1, "OneHot": 1, "Dropout": 2}


@dataclass(frozen=True)
class Problem:
    """One reason the parser would refuse the graph (or refuse the profile)."""

    op: str     # operator, or what else is at fault: "model", "input", "output", "tensor"
    node: str   # node (or tensor, input, profile corner) name
    restriction: str

    def __str__(self) -> str:
        return f"{self.op} {self.node!r}: {self.restriction}"


def _type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type)


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nodes(graph: onnx.GraphProto):
    """Every node, those of If/Loop/Scan bodies included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _nodes(sub)


def _tensor_info(model: onnx.ModelProto) -> dict[str, tuple[str, int | None]]:
    """(type name, rank or None) of every tensor that shape inference types."""
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    info = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor = value.type.tensor_type
        info[value.name] = (_type_name(tensor.elem_type), len(tensor.shape.dim) if tensor.HasField("shape") else None)
    for init in inferred.graph.initializer:
        info[init.name] = (_type_name(init.data_type), len(init.dims))
    return info


def _node_restrictions(node: onnx.NodeProto, info: dict, constants: set[str]) -> list[str]:
    """What this node breaks of its operator's row (and the TensorRT layer behind it)."""
    op, attrs, broken = node.op_type, _attrs(node), []
    rank = info.get(node.input[0], (None, None))[1] if node.input else None
    if op == "GridSample":
        if rank != 4:
            broken.append(f"input must be 4-D (NCHW), got rank {rank}")
        if _text(attrs.get("mode", "bilinear")) not in GRID_MODES:
            broken.append(f"mode {_text(attrs['mode'])!r} is none of {sorted(GRID_MODES)} (TensorRT API)")
        if _text(attrs.get("padding_mode", "zeros")) not in GRID_PADDING:
            broken.append(f"padding_mode {_text(attrs['padding_mode'])!r} is none of {sorted(GRID_PADDING)} "
                          "(IGridSampleLayer: FILL, CLAMP, REFLECT)")
    elif op == "Resize":
        mode = _text(attrs.get("mode", "nearest"))
        if mode not in RESIZE_MODES:
            broken.append(f"mode {mode!r}: supported resize modes are {sorted(RESIZE_MODES)}")
        coordinates = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
        if coordinates not in RESIZE_COORDINATES:
            broken.append(f"coordinate_transformation_mode {coordinates!r} is none of {sorted(RESIZE_COORDINATES)}")
        nearest = _text(attrs.get("nearest_mode", "round_prefer_floor"))
        if mode == "nearest" and nearest not in RESIZE_NEAREST:
            broken.append(f"nearest_mode {nearest!r} is none of {sorted(RESIZE_NEAREST)}")
        if attrs.get("antialias", 0):
            broken.append("antialiasing is not supported")
        if _text(attrs.get("keep_aspect_ratio_policy", "stretch")) != "stretch":
            broken.append("the only supported keep_aspect_ratio_policy is 'stretch'")
        if "axes" in attrs and rank is not None and list(attrs["axes"]) != list(range(rank)):
            broken.append(f"axes {list(attrs['axes'])} must be every axis in order (an iota of the rank)")
    elif op == "Pad":
        if _text(attrs.get("mode", "constant")) not in PAD_MODES:
            broken.append(f"mode {_text(attrs['mode'])!r} is none of {sorted(PAD_MODES)}")
    elif op in POOLS:
        if rank not in (4, 5):
            broken.append(f"2D or 3D pooling only (input rank 4 or 5), got rank {rank}")
        if any(d != 1 for d in attrs.get("dilations", [])):
            broken.append(f"dilations {list(attrs['dilations'])} must be empty or all ones")
        if op == "MaxPool" and len([o for o in node.output if o]) > 1:
            broken.append("the Indices output is unsupported")
    elif op == "ScatterND" and _text(attrs.get("reduction", "none")) != "none":
        broken.append("reduction is not supported")
    elif op == "Constant" and set(attrs) & {"sparse_value", "value_string", "value_strings"}:
        broken.append("sparse_value, value_string and value_strings are unsupported")
    index = CONSTANT_INPUTS.get(op)
    if index is not None and len(node.input) > index and node.input[index] and node.input[index] not in constants:
        broken.append(f"input {index} ({node.input[index]!r}) must be an initializer or Constant, "
                      "it is computed in the graph")
    return broken


def check_operators(model: onnx.ModelProto) -> list[Problem]:
    """Problems of `model`'s opset, operators, their attributes and the types of their tensors."""
    model = onnx.inliner.inline_local_functions(model)  # the parser imports local functions too
    problems = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not OPSET_MIN <= opset <= OPSET_MAX:
        problems.append(Problem("model", model.graph.name, f"opset {opset} is outside TensorRT "
                                f"{TENSORRT_VERSION}'s {OPSET_MIN}..{OPSET_MAX}"))
    info = _tensor_info(model)
    graph_io = {v.name for v in [*model.graph.input, *model.graph.output]}
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in _nodes(model.graph) if node.op_type == "Constant" for out in node.output}
    for node in _nodes(model.graph):
        op, name = node.op_type, node.name or (node.output[0] if node.output else "?")
        if node.domain not in ("", "ai.onnx"):
            problems.append(Problem(op, name, f"domain {node.domain!r}: needs a TensorRT plugin"))
            continue
        if op not in SUPPORTED:
            listed = "marked not supported" if op in UNSUPPORTED else "not in the parser's table"
            problems.append(Problem(op, name, NOTES.get(op, f"{listed} for TensorRT {TENSORRT_VERSION}")))
            continue
        first = info.get(node.input[0]) if node.input and node.input[0] else None
        if SUPPORTED[op] and first and first[0] not in SUPPORTED[op]:
            problems.append(Problem(op, name, f"input {node.input[0]!r} is {first[0]}; "
                                    f"supported types: {', '.join(SUPPORTED[op])}"))
        problems += [Problem(op, name, text) for text in _node_restrictions(node, info, constants)]
        problems += [Problem(op, name, text) for text in _type_restrictions(node.output, info, graph_io)]
    for init in model.graph.initializer:
        problems += [Problem("initializer", init.name, text) for text in _type_restrictions([init.name], info, graph_io)]
    return problems


def _type_restrictions(tensors: list[str], info: dict, graph_io: set[str]) -> list[str]:
    """The types of `tensors` that TensorRT has no tensor for (UINT8: only at the graph's edges)."""
    broken = []
    for tensor in tensors:
        kind = info.get(tensor, (None,))[0]
        if kind in EDGE_ONLY_TYPES and tensor not in graph_io:
            broken.append(f"tensor {tensor!r} is {kind}, which TensorRT takes only as a network input or output")
        elif kind is not None and kind not in TENSOR_TYPES | EDGE_ONLY_TYPES:
            broken.append(f"tensor {tensor!r} is {kind}, not a TensorRT tensor type (DOUBLE is clamped "
                          "to FLOAT; INT8/INT4/FP8 only through Q/DQ)")
    return broken


def check_dynamic_io(model: onnx.ModelProto, task: Task) -> list[Problem]:
    """Problems of the graph's inputs and output against the profile's dynamic axes: batch, H and W
    symbolic; window length, channels and kernel size fixed, as the profile gives them (tensorrt_build)."""
    problems = []
    names = [v.name for v in model.graph.input]
    if sorted(names) != sorted(task.net_inputs):
        problems.append(Problem("model", "inputs", f"inputs {names}, the task {task.name!r} needs {list(task.net_inputs)}"))
    for value in model.graph.input:
        if value.name not in task.net_inputs:
            continue
        dims = value.type.tensor_type.shape.dim
        wanted = task.net_inputs[value.name].shape("batch", "height", "width")  # names: symbolic axes
        if len(dims) != len(wanted):
            problems.append(Problem("input", value.name, f"rank {len(dims)}, the profile gives {len(wanted)} axes"))
            continue
        for axis, (dim, want) in enumerate(zip(dims, wanted)):
            if isinstance(want, str) and not dim.dim_param:
                problems.append(Problem("input", value.name, f"axis {axis} ({want}) must be symbolic for the "
                                        f"profile, it is fixed at {dim.dim_value}"))
            elif not isinstance(want, str) and dim.dim_value != want:
                problems.append(Problem("input", value.name, f"axis {axis} must be fixed at {want}, "
                                        f"got {dim.dim_param or dim.dim_value}"))
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4 or not all(d.dim_param for d in dims[:3]):
            problems.append(Problem("output", value.name, "must be [N, H*s, W*s, 3] with N, H*s, W*s symbolic"))
    return problems


def check_profile(model: onnx.ModelProto, shapes: dict[str, tuple[tuple[int, ...], ...]]) -> list[Problem]:
    """Problems of the graph at each corner (min, opt, max) of the optimisation profile: shapes
    that inference cannot resolve or that collapse to zero (a pyramid too deep for the smallest
    side), and the rank-bound restrictions at those shapes."""
    from export.plan_memory import infer_at  # its folding needs onnx.reference: only when profiling

    problems = []
    for corner, label in enumerate(("min", "opt", "max")):
        at = {name: corners[corner] for name, corners in shapes.items()}
        try:
            inferred = infer_at(model, at)
        except Exception as err:  # onnx raises InferenceError, ValueError, RuntimeError ...
            problems.append(Problem("model", label, f"shapes at the profile's {label} {at}: {err}"))
            continue
        shapes_at = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                     for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
        for name, dims in shapes_at.items():
            if any(d == 0 for d in dims):
                problems.append(Problem("tensor", name, f"empty ({dims}) at the profile's {label} {at}"))
        kernels = {init.name: list(init.dims) for init in inferred.graph.initializer}
        for node in inferred.graph.node:
            if node.op_type in (*POOLS, "Conv") and node.input[0] in shapes_at:
                for text in _window_misfit(node, shapes_at[node.input[0]], kernels):
                    problems.append(Problem(node.op_type, node.name, f"{text} at the profile's {label} {at}"))
    return problems


def _window_misfit(node: onnx.NodeProto, shape: list[int], kernels: dict[str, list[int]]) -> list[str]:
    """Spatial axes where the (dilated) kernel is larger than the padded input: ONNX shape
    inference lets that through, TensorRT's builder does not."""
    attrs = _attrs(node)
    if _text(attrs.get("auto_pad", "NOTSET")) != "NOTSET":
        return []  # SAME_* pads to fit; VALID is not what our exporter writes
    spatial = shape[2:]
    kernel = list(attrs.get("kernel_shape", kernels.get(node.input[1], [])[2:] if len(node.input) > 1 else []))
    pads = list(attrs.get("pads", [0] * 2 * len(spatial)))
    dilations = list(attrs.get("dilations", [1] * len(spatial)))
    return [f"kernel {k} (dilation {d}) does not fit axis {axis + 2} of {size} + pads {pads[axis]}+{pads[axis + len(spatial)]}"
            for axis, (size, k, d) in enumerate(zip(spatial, kernel, dilations))
            if size + pads[axis] + pads[axis + len(spatial)] < (k - 1) * d + 1]


def check_model(model: onnx.ModelProto, task: Task | None = None,
                shapes: dict[str, tuple[tuple[int, ...], ...]] | None = None) -> list[Problem]:
    """Everything above that applies: operators always, I/O against `task`, the profile's corners."""
    problems = check_operators(model)
    if task is not None:
        problems += check_dynamic_io(model, task)
    if shapes is not None:
        problems += check_profile(model, shapes)
    return problems


def task_shapes(task: Task) -> dict[str, tuple[tuple[int, ...], ...]]:
    """The (min, opt, max) input shapes `make engine` builds the task's plan with."""
    from export.plan_memory import profile_for
    from export.tensorrt_build import ProfileSpec, profile_shapes

    profile = profile_for(task)
    return profile_shapes(task, ProfileSpec(max_batch=profile.max_batch, max_side=profile.max_side))


def check_task_onnx(onnx_path: Path, task: Task,
                    shapes: dict[str, tuple[tuple[int, ...], ...]] | None = None) -> list[Problem]:
    """check_model on a task's exported graph with `shapes` (default: the task's own profile)."""
    return check_model(onnx.load(str(onnx_path)), task, shapes or task_shapes(task))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.tensorrt_ops",
        description=f"Check each task's exported ONNX against TensorRT {TENSORRT_VERSION}'s ONNX parser "
                    f"({SOURCE}) and its optimisation profile. Exit status 1 when anything would fail.")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--task", action="append", choices=list(TASKS), help="only these tasks (default: all)")
    args = parser.parse_args(argv)
    failed = False
    for name in args.task or TASKS:
        path = args.repository / TASKS[name].net_model / "1" / "model.onnx"
        if not path.is_file():
            print(f"tensorrt_ops: {path} is missing: run `make engine` first", file=sys.stderr)
            return 1
        problems = check_task_onnx(path, TASKS[name])
        failed |= bool(problems)
        print(f"tensorrt_ops: {path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
