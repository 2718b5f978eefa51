"""Confine uint8 to the ONNX graph's edges: one Cast after each uint8 input, one before each uint8
output, float32 everywhere between.

Why: TensorRT accepts UINT8 only as a network input/output type and only Cast converts it
(onnx-tensorrt docs/operators.md, "UINT8 is only supported as network input or output tensor
types"), while the exported ServingNet transposes, gathers and selects uint8 tensors (permute
before .float(), the inpainting mask test and the bit-exact centre-frame copy). In float32 those
ops are exact for values 0..255, so the rewritten graph computes the same numbers; the parity
check against PyTorch that follows the export proves it on every export.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

U8, F32 = TensorProto.UINT8, TensorProto.FLOAT


def _to_float(tensor: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)


def confine_uint8_to_edges(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of `model` whose uint8 tensors are only its inputs and outputs.

    Interior Cast(to=uint8) nodes become Identity: exact because ServingNet clamps and rounds
    before casting (the graph's final Cast truncates the same integral values)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    renamed: dict[str, str] = {}
    head: list[onnx.NodeProto] = []
    for value in graph.input:
        if value.type.tensor_type.elem_type == U8:
            renamed[value.name] = f"{value.name}__float"
            head.append(helper.make_node("Cast", [value.name], [renamed[value.name]], to=F32,
                                         name=f"{value.name}__to_float"))
    outputs = {v.name for v in graph.output if v.type.tensor_type.elem_type == U8}
    tail: list[onnx.NodeProto] = []
    for name in outputs:
        tail.append(helper.make_node("Cast", [f"{name}__float"], [name], to=U8, name=f"{name}__to_uint8"))

    for init in graph.initializer:
        if init.data_type == U8:
            init.CopyFrom(_to_float(init))
    for node in graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
        node.output[:] = [f"{o}__float" if o in outputs else o for o in node.output]
        if node.op_type == "Cast" and any(a.name == "to" and a.i == U8 for a in node.attribute):
            node.op_type = "Identity"
            del node.attribute[:]
        for attr in node.attribute:  # Constant / ConstantOfShape values
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == U8:
                attr.t.CopyFrom(_to_float(attr.t))
    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # stale interior types; re-inferred below
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    leftovers = [v.name for v in inferred.graph.value_info
                 if v.type.tensor_type.elem_type == U8 and v.name not in outputs]
    if leftovers:
        raise ValueError(f"uint8 tensors left inside the graph (an op producing uint8 that this "
                         f"pass does not handle): {leftovers[:5]}")
    return model
