"""export/plan_memory.py on a small graph built here: shapes computed inside the graph (pad to a
multiple of 8, as the exported networks do) are folded so every tensor's size is known at the
profile's maximum, and the memory estimate counts only tensors alive at the same time.
(Every task's real ONNX is checked in test_gpu_image.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.plan_memory import footprint, infer_at


def padded_conv() -> "onnx.ModelProto":  # noqa: F821
    """X [N, 3, H, W] float -> pad H, W up to a multiple of 8 (computed from Shape) -> 3x3 conv
    to 16 channels -> ReLU -> 3x3 conv to 3 channels = Y."""
    const = lambda name, value: numpy_helper.from_array(np.array(value, dtype=np.int64), name)  # noqa: E731
    weights = [numpy_helper.from_array(np.zeros((16, 3, 3, 3), np.float32), "w1"),
               numpy_helper.from_array(np.zeros((3, 16, 3, 3), np.float32), "w2"),
               const("eight", 8), const("zeros6", [0, 0, 0, 0, 0, 0])]
    nodes = [
        helper.make_node("Shape", ["X"], ["hw"], start=2),
        helper.make_node("Mod", ["hw", "eight"], ["rem"]),
        helper.make_node("Sub", ["eight", "rem"], ["short"]),
        helper.make_node("Mod", ["short", "eight"], ["extra"]),
        helper.make_node("Concat", ["zeros6", "extra"], ["pads"], axis=0),
        helper.make_node("Pad", ["X", "pads"], ["padded"]),
        helper.make_node("Conv", ["padded", "w1"], ["features"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["features"], ["active"]),
        helper.make_node("Conv", ["active", "w2"], ["Y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "padded_conv",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_shapes_computed_in_the_graph_are_known_at_the_maximum():
    inferred = infer_at(padded_conv(), {"X": (4, 3, 100, 61)})
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    assert shapes["padded"] == [4, 3, 104, 64]
    assert shapes["features"] == shapes["active"] == [4, 16, 104, 64]
    assert shapes["Y"] == [4, 3, 104, 64]


def test_footprint_counts_live_tensors_in_fp16():
    fp = footprint(padded_conv(), {"X": (4, 3, 100, 61)}, "fp16")
    features = 4 * 16 * 104 * 64
    assert (fp.largest_tensor, fp.largest_elements) == ("features", features)
    # At most two of padded/features/active are alive at once: features + active at the ReLU.
    assert fp.activation_bytes == 2 * features * 2
    assert fp.io_bytes == (4 * 3 * 100 * 61 + 4 * 3 * 104 * 64) * 2
    assert fp.weight_bytes == (16 * 3 * 9 + 3 * 16 * 9) * 2 + 7 * 8
    assert footprint(padded_conv(), {"X": (4, 3, 100, 61)}, "fp32").activation_bytes == 2 * features * 4


def test_a_profile_of_the_wrong_rank_is_refused():
    with pytest.raises(ValueError, match="rank 4"):
        infer_at(padded_conv(), {"X": (4, 3, 100)})
