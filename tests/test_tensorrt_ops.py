"""Every exported graph uses only what TensorRT 10.5's ONNX parser (the GPU image's) takes, with
batch, height and width dynamic over each task's profile; and the check itself catches an
unsupported operator, a DFT, a 5-D GridSample, a Resize mode, uint8 inside the graph, a fixed
height and a pyramid too deep for the profile's smallest side (graphs built with onnx.helper)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from training.checkpoint import load_checkpoint
from export.tensorrt_ops import (OPSET_MAX, check_dynamic_io, check_operators, check_profile, check_task_onnx,
                                 main)
from training.contract import TASKS

F32, U8, I64 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT64
CHECKPOINTS = Path(__file__).resolve().parents[1] / "training" / "checkpoints"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TASKS))
def test_exported_graph_parses_in_tensorrt_with_its_profile(served_repository, name):
    problems = check_task_onnx(served_repository / TASKS[name].net_model / "1" / "model.onnx", TASKS[name])
    assert problems == [], "\n".join(map(str, problems))


@pytest.mark.slow
def test_the_aligned_denoise_graph_carries_its_flow(served_repository):
    """The check above covers the per-pixel steps: an aligned checkpoint's graph warps in-graph."""
    if not load_checkpoint(CHECKPOINTS / "denoise.pt")[0].config.aligned:
        pytest.skip("the shipped denoise checkpoint is not aligned (NetConfig.aligned)")
    model = onnx.load(str(served_repository / "denoise_net" / "1" / "model.onnx"))
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["GridSample"] > 0 and ops["AveragePool"] > 0, ops


def make_model(nodes, inputs, outputs, initializers=(), opset=20) -> onnx.ModelProto:
    """A small valid ONNX model (checked, so a flag below is about TensorRT, not a broken graph)."""
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def image(name: str, elem_type: int = F32, rank: int = 4):
    return helper.make_tensor_value_info(name, elem_type, ["N", 3, "H", "W", "D"][:rank])


def problems_of(model: onnx.ModelProto) -> list[str]:
    return [str(p) for p in check_operators(model)]


def test_the_flow_steps_pass():
    """What training/flow.py uses: Pad (reflect, edge), AveragePool 2D, linear Resize, 4-D GridSample."""
    grid = helper.make_tensor_value_info("grid", F32, ["N", "H", "W", 2])
    pads = helper.make_tensor("pads", I64, [8], [0, 0, 1, 1, 0, 0, 1, 1])
    scales = helper.make_tensor("scales", F32, [4], [1, 1, 2, 2])
    nodes = [helper.make_node("Pad", ["x", "pads"], ["padded"], mode="reflect", name="pad"),
             helper.make_node("Pad", ["padded", "pads"], ["edged"], mode="edge", name="edge"),
             helper.make_node("AveragePool", ["edged"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Resize", ["pooled", "", "scales"], ["up"], mode="linear",
                              coordinate_transformation_mode="half_pixel", name="resize"),
             helper.make_node("GridSample", ["x", "grid"], ["warped"], mode="linear", padding_mode="border",
                              align_corners=0, name="warp")]
    model = make_model(nodes, [image("x"), grid], [image("up"), image("warped")], [pads, scales])
    assert problems_of(model) == []


def test_an_unsupported_operator_is_named():
    nodes = [helper.make_node("Unique", ["x"], ["y"], name="uniq"),
             helper.make_node("Plugged", ["x"], ["z"], domain="com.example", name="custom")]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [4])],
                          [helper.make_tensor_value_info("y", F32, None), helper.make_tensor_value_info("z", F32, None)]),
        opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.example", 1)])
    found = problems_of(model)
    assert "Unique 'uniq': marked not supported for TensorRT 10.5" in found
    assert any(p.startswith("Plugged 'custom'") and "plugin" in p for p in found)


def test_dft_is_refused_with_the_reason():
    x = helper.make_tensor_value_info("x", F32, ["N", 64, 1])
    y = helper.make_tensor_value_info("y", F32, ["N", 64, 2])
    axis = helper.make_tensor("axis", I64, [], [1])
    model = make_model([helper.make_node("DFT", ["x", "", "axis"], ["y"], name="spectrum")], [x], [y], [axis])
    found = problems_of(model)
    assert len(found) == 1 and found[0].startswith("DFT 'spectrum'") and "11.2" in found[0]


def test_a_5d_grid_sample_is_refused():
    grid = helper.make_tensor_value_info("grid", F32, ["N", "D", "H", "W", 3])
    model = make_model([helper.make_node("GridSample", ["x", "grid"], ["y"], name="warp3d")],
                       [image("x", rank=5), grid], [image("y", rank=5)])
    assert problems_of(model) == ["GridSample 'warp3d': input must be 4-D (NCHW), got rank 5"]


def test_resize_modes_tensorrt_lacks_are_refused():
    scales = helper.make_tensor("scales", F32, [4], [1, 1, 2, 2])
    model = make_model([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", antialias=1,
                                         name="up")], [image("x")], [image("y")], [scales])
    found = problems_of(model)
    assert any("mode 'cubic'" in p for p in found) and any("antialiasing" in p for p in found), found


def test_uint8_inside_the_graph_is_refused():
    """TensorRT takes UINT8 only at the network's edges (export/uint8_edges.py keeps it there)."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1], name="nhwc"),
             helper.make_node("Cast", ["t"], ["y"], to=F32, name="to_float")]
    model = make_model(nodes, [image("x", U8)], [helper.make_tensor_value_info("y", F32, ["N", "H", "W", 3])])
    found = problems_of(model)
    assert any(p.startswith("Transpose 'nhwc'") and "UINT8" in p for p in found), found
    assert not any("to_float" in p for p in found)  # a uint8 network input may be cast


def test_an_opset_beyond_the_parser_is_refused():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [image("x")], [image("y")], opset=OPSET_MAX + 1)
    assert any("opset 21" in p for p in problems_of(model))


def test_a_fixed_height_breaks_the_profile():
    task = TASKS["denoise"]
    window = helper.make_tensor_value_info("WINDOW", U8, ["batch", task.net_frames, 720, "width", 3])
    restored = helper.make_tensor_value_info("RESTORED", U8, ["batch", "h", "w", 3])
    model = helper.make_model(helper.make_graph([], "g", [window], [restored]))
    found = [str(p) for p in check_dynamic_io(model, task)]
    assert found == ["input 'WINDOW': axis 2 (height) must be symbolic for the profile, it is fixed at 720"]


def test_a_pyramid_too_deep_for_the_smallest_side_is_caught():
    """Four 1/4 poolings of a 64-pixel side (the profile's minimum) leave nothing to pool."""
    nodes = [helper.make_node("AveragePool", [f"p{i}"], [f"p{i + 1}"], kernel_shape=[4, 4], strides=[4, 4],
                              name=f"pool{i}") for i in range(4)]
    model = make_model(nodes, [image("p0")], [image("p4")], opset=18)
    assert check_profile(model, {"p0": ((1, 3, 256, 256), (1, 3, 256, 256), (1, 3, 256, 256))}) == []
    found = check_profile(model, {"p0": ((1, 3, 64, 64), (1, 3, 1080, 1920), (1, 3, 2160, 2160))})
    assert [str(p).split(" at ")[0] for p in found] == [
        "AveragePool 'pool3': kernel 4 (dilation 1) does not fit axis 2 of 1 + pads 0+0",
        "AveragePool 'pool3': kernel 4 (dilation 1) does not fit axis 3 of 1 + pads 0+0"], found


def test_cli_names_a_missing_graph(tmp_path, capsys):
    assert main(["--repository", str(tmp_path), "--task", "sr4"]) == 1
    assert "sr4_net/1/model.onnx is missing" in capsys.readouterr().err


def test_make_engine_stops_before_building_a_plan_tensorrt_would_refuse(monkeypatch, capsys, tmp_path):
    """Where TensorRT is present (the GPU image), `make engine` checks the exported graph first and
    fails with the problem list; a graph that passes goes on to the build (here: exit 2, no TensorRT)."""
    import export.engine as engine
    import export.tensorrt_ops as tensorrt_ops
    from test_export_onnx import tiny_checkpoint

    if engine.tensorrt_problem() is None:
        pytest.skip("TensorRT and a GPU are here: the second install would really build")
    monkeypatch.setattr(engine, "tensorrt_problem", lambda: None)
    args = ["--task", "sr4", "--backend", "tensorrt", "--checkpoint", str(tiny_checkpoint(tmp_path / "sr4.pt", "sr4")),
            "--repository", str(tmp_path / "repo")]
    with monkeypatch.context() as older_parser:
        older_parser.setattr(tensorrt_ops, "OPSET_MAX", 17)  # a parser older than our opset-18 export
        assert engine.main(args) == 1
    err = capsys.readouterr().err
    assert "engine: FAILED:" in err and "opset 18 is outside TensorRT 10.5's 9..17" in err, err
    assert not (tmp_path / "repo" / "sr4_net" / "config.pbtxt").exists()
    assert engine.main(args) == engine.EXIT_BACKEND_UNAVAILABLE
    assert "Python API is not importable" in capsys.readouterr().err
