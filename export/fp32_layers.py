"""The ONNX nodes that must stay FP32 in an FP16 TensorRT plan: marked at export, pinned at build.

The deblur graph's Wiener deconvolution (training/deconvolution.py) sums up to 2,208 products per
sample in its matrix DFTs and divides by |K|^2 + NSR: FP16's 11-bit mantissa there would put
errors of several grey levels into the deconvolved window. Denoise's alignment and inpaint's
propagation (training/flow.py, training/propagation.py) solve 2x2 least squares whose determinant
in flat areas is about 1e-8, below FP16's smallest subnormal (6e-8), and their warps add sub-pixel
offsets to pixel coordinates up to 4095, which FP16 holds to 1-2 px: in FP16 the flow divides by
zero and the warps land whole pixels off. Denoise's noise bound (training/noise_bound.py) averages
a window's noise and blocking responses over millions of pixels into levels of a few 1e-3, which
FP16 would round coarsely. The exporter names nodes `node_<op>_N`,
but records each node's module path in its `pkg.torch.onnx.name_scopes` metadata; `mark_fp32_nodes`
renames the nodes of the FP32 modules to `fp32/<name>`. The ONNX parser names each TensorRT layer
after its node, so `pin_fp32_layers` finds them by that prefix and sets their precision and
output types to FP32 (TensorRT 10: ILayer.precision / set_output_type, obeyed with
BuilderFlag.OBEY_PRECISION_CONSTRAINTS; trtexec: --precisionConstraints=obey --layerPrecisions).
"""
from __future__ import annotations

import ast

import onnx

PREFIX = "fp32/"
SCOPES = ("net.deconvolution", "net.alignment", "net.propagation", "net.noise_bound")  # module paths inside ServingNet whose nodes stay FP32
_SCOPE_KEY = "pkg.torch.onnx.name_scopes"


def _in_fp32_scope(node: onnx.NodeProto) -> bool:
    for prop in node.metadata_props:
        if prop.key == _SCOPE_KEY:
            return any(scope in SCOPES for scope in ast.literal_eval(prop.value))
    return False


def mark_fp32_nodes(model: onnx.ModelProto) -> int:
    """Rename in place every node exported from a module in SCOPES to PREFIX + its name; returns
    how many were renamed."""
    marked = 0
    for node in model.graph.node:
        if _in_fp32_scope(node) and not node.name.startswith(PREFIX):
            node.name = PREFIX + node.name
            marked += 1
    return marked


def fp32_node_names(model: onnx.ModelProto) -> list[str]:
    """The marked nodes' names: the layer names trtexec's --layerPrecisions takes."""
    return [node.name for node in model.graph.node if node.name.startswith(PREFIX)]


def pin_fp32_layers(network, trt) -> int:
    """Set FP32 precision and output types on every floating-point layer of a parsed TensorRT
    `network` whose name starts with PREFIX (integer shape arithmetic is left alone); returns how
    many were pinned. The builder obeys the pins only with OBEY_PRECISION_CONSTRAINTS set."""
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        if not layer.name.startswith(PREFIX) or any(t.dtype != trt.float32 for t in outputs):
            continue
        layer.precision = trt.float32
        for i in range(layer.num_outputs):
            layer.set_output_type(i, trt.float32)
        pinned += 1
    return pinned
