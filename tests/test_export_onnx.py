"""Checkpoint -> ONNX (export/onnx_export.py): names, dynamic axes, opset, parity vs PyTorch on
real windows, odd sizes and batches, loud failure: on the shipped networks (the exports the served
repository uses), and tiny random ones where a test exports its own."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.engine import ensure_onnx
from export.fp32_layers import fp32_node_names
from export.onnx_cache import CACHE
from export.repository import CHECKPOINTS
from export.onnx_export import ExportReport, check_against_torch, check_task, main, torch_reference
from export.samples import box_mask, read_window, sample_clip
from training.checkpoint import load_checkpoint, save_checkpoint
from training.contract import BLUR_KERNEL, KERNEL_SIZE, MASK_WINDOW, ONNX_OPSET, RESTORED, TASKS, WINDOW
from training.network import NetConfig, VideoRestorationNet
from training.processing import ServingNet, pack_masks


def tiny_checkpoint(path: Path, task: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    t = TASKS[task]
    # One U-Net level: the exported graph must pad odd sizes to r*2 and come back (143x175 below).
    net = VideoRestorationNet(NetConfig(channels=8, frame_channels=4, fusion_blocks=1, levels=1, level_blocks=1,
                                        scale=t.scale, masked=t.masked, deconvolved=t.deconvolved,
                                        propagation_frames=t.net_frames if t.propagate else 0))
    save_checkpoint(path, net, task=task)
    return path


@pytest.fixture(scope="module", params=["denoise", "sr4", "inpaint", "deblur"])
def shipped_export(request, tmp_path_factory):
    """The task's shipped network exported and parity-checked as `make engine` does it, and the
    report its stamp recorded. It is the export the served repository uses (conftest.py), taken
    from build/onnx_cache when either made it first: one export per task per run (inpaint's takes
    about two minutes)."""
    tmp = tmp_path_factory.mktemp(request.param)
    checkpoint = CHECKPOINTS / f"{request.param}.pt"
    ensure_onnx(checkpoint, tmp / "net.onnx", TASKS[request.param], cache=CACHE)
    stamp = json.loads((tmp / "net.onnx.json").read_text())
    report = ExportReport(path=tmp / "net.onnx", task=request.param, opset=stamp["opset"],
                          max_abs_diff=stamp["max_abs_diff_vs_pytorch"],
                          checked_shapes=tuple(tuple(s) for s in stamp["parity_shapes"]), seconds=float("nan"))
    net, _ = load_checkpoint(checkpoint)
    return request.param, report, ServingNet(net).eval()


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_real_window_is_decoded():
    w = read_window(sample_clip(), 5, start=10)
    assert w.shape == (1, 5, 144, 176, 3) and w.dtype == np.uint8 and w.std() > 10


def test_graph_has_contract_names_dynamic_axes_and_opset(shipped_export):
    task, report, _ = shipped_export
    model = onnx.load(report.path)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= ONNX_OPSET
    inputs = {i.name: dims(i) for i in model.graph.input}
    symbolic = {name: tuple(spec.shape("batch", "height", "width")) for name, spec in TASKS[task].net_inputs.items()}
    assert {name: tuple(d) for name, d in inputs.items()} == symbolic
    assert [i.name for i in model.graph.input] == list(TASKS[task].net_inputs)
    (output,) = model.graph.output
    assert output.name == RESTORED and output.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    t = TASKS[task].net_frames
    assert report.max_abs_diff <= 1 and report.checked_shapes == ((1, t, 144, 176, 3), (2, t, 143, 175, 3))


def test_uint8_only_at_the_edges_for_tensorrt(shipped_export):
    # TensorRT takes UINT8 only as network I/O converted by Cast (export/uint8_edges.py).
    _, report, _ = shipped_export
    model = onnx.shape_inference.infer_shapes(onnx.load(report.path))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    touching = [(n.op_type, [i for i in [*n.input, *n.output] if types.get(i) == onnx.TensorProto.UINT8])
                for n in graph.node]
    touching = [(op, names) for op, names in touching if names]
    edges = {v.name for v in [*graph.input, *graph.output]}
    assert touching and all(op == "Cast" and set(names) <= edges for op, names in touching), touching


def test_the_deconvolution_flow_and_propagation_are_marked_to_stay_fp32(shipped_export):
    """deblur's matrix DFTs (every MatMul of the graph), and the flow and warps of denoise's
    alignment and inpaint's propagation (every GridSample), must not run in FP16
    (export/fp32_layers.py); the network's own layers (every node that reads a trained weight) may."""
    task, report, serving = shipped_export
    model = onnx.load(report.path)
    marked = set(fp32_node_names(model))
    config = serving.net.config
    if config.deconvolved:
        assert {n.name for n in model.graph.node if n.op_type == "MatMul"} <= marked
    if config.aligned or config.propagation_frames:
        warps = {n.name for n in model.graph.node if n.op_type == "GridSample"}
        assert warps and warps <= marked
    if not (config.deconvolved or config.aligned or config.propagation_frames):
        assert marked == set()
    weights = {f"net.{name}" for name, _ in serving.net.named_parameters()}
    reading_weights = {n.name for n in model.graph.node if weights & set(n.input)}
    assert reading_weights and not reading_weights & marked


def test_runs_at_odd_sizes_and_batch_like_pytorch(shipped_export):
    task, report, model = shipped_export
    rng = np.random.default_rng(1)
    t = TASKS[task].net_frames
    feeds = {WINDOW: rng.integers(0, 256, (3, t, 37, 41, 3), dtype=np.uint8)}
    masks = box_mask(feeds[WINDOW])
    if TASKS[task].masked:
        feeds[MASK_WINDOW] = pack_masks(masks)
    if TASKS[task].deconvolved:
        feeds[BLUR_KERNEL] = rng.dirichlet(np.ones(KERNEL_SIZE**2), 3).reshape(3, KERNEL_SIZE, KERNEL_SIZE).astype(np.float32)
    got = ort.InferenceSession(str(report.path)).run([RESTORED], feeds)[0]
    s = TASKS[task].scale
    assert got.shape == (3, 37 * s, 41 * s, 3)
    assert np.abs(got.astype(int) - torch_reference(model, feeds).astype(int)).max() <= 1
    if TASKS[task].masked:  # outside the mask the centre frame comes back bit-exact
        keep = masks[:, t // 2, ..., 0] == 0
        np.testing.assert_array_equal(got[keep], feeds[WINDOW][:, t // 2][keep])


def test_a_masked_graph_fills_frames_smaller_than_its_pyramid(shipped_export):
    """The pull-push pyramid has a fixed depth (training/network.py): frames smaller than 2**levels
    must still run, like PyTorch (on this module's inpaint export: no second export)."""
    task, report, model = shipped_export
    if not TASKS[task].masked:
        pytest.skip(f"{task} has no mask to fill")
    window = read_window(sample_clip(), TASKS[task].net_frames, start=10)
    masks = np.zeros((*window.shape[:4], 1), np.uint8)
    masks[..., ::2, ::2, :] = 255  # holes in even the 1x1 frame
    cases = [{WINDOW: np.ascontiguousarray(window[..., :h, :w, :]), MASK_WINDOW: pack_masks(masks[..., :h, :w, :])}
             for h, w in ((1, 1), (3, 5), (9, 2))]
    assert check_against_torch(report.path, model, cases) <= 1


def test_parity_failure_exits_nonzero_and_removes_the_file(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "d.pt", "denoise")
    output = tmp_path / "d.onnx"
    # Tolerance -1 cannot be met even by a bit-exact graph: exercises the failure path.
    assert main(["--checkpoint", str(checkpoint), "--output", str(output), "--tolerance", "-1"]) == 1
    err = capsys.readouterr().err
    assert "differs from PyTorch by 0 grey levels (tolerance -1)" in err and "[1, 5, 144, 176, 3]" in err
    assert not output.exists()


def test_checkpoint_must_fit_the_task(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "d.pt", "denoise")
    net, extra = load_checkpoint(checkpoint)
    check_task(checkpoint, extra, net.config, TASKS["denoise"])
    with pytest.raises(ValueError, match=r"scale 1 \(task 'sr4' needs 4\)"):
        check_task(checkpoint, extra, net.config, TASKS["sr4"])
