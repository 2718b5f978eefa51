"""TensorRT plan building (export/tensorrt_build.py): the pure parts on CPU (profile shapes,
precision, metadata and staleness, the trtexec line); the build itself where TensorRT and a GPU
exist."""
from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from export.engine import tensorrt_problem
from export.tensorrt_build import (NEEDS_TENSORRT, EngineBuildError, GpuStackMissing, PlanMetadata, ProfileSpec,
                                   apply_timing_cache, choose_precision, engine_memory_bytes, import_tensorrt,
                                   import_torch_cuda, profile_json, profile_shapes, run_plan, stale_reason,
                                   trtexec_command)
from training.contract import TASKS


def test_profile_covers_batch_and_sizes_with_1080p_optimum():
    shapes = profile_shapes(TASKS["denoise"], ProfileSpec())
    assert shapes == {"WINDOW": ((1, 5, 64, 64, 3), (1, 5, 1080, 1920, 3), (8, 5, 2160, 2160, 3))}
    masked = profile_shapes(TASKS["inpaint"], ProfileSpec(max_batch=4, max_side=720))
    t = TASKS["inpaint"].net_frames  # the mask window is as long as the frames' window, 8 pixels per byte
    assert masked["MASK_WINDOW"] == ((1, t, 64, 8, 1), (1, t, 720, 90, 1), (4, t, 720, 90, 1))
    with pytest.raises(ValueError, match="--min-side"):
        profile_shapes(TASKS["denoise"], ProfileSpec(min_side=4096))
    with pytest.raises(ValueError, match="opt batch"):
        profile_shapes(TASKS["denoise"], ProfileSpec(opt_batch=9))


def test_precision_choice():
    assert choose_precision("auto", True) == "fp16" and choose_precision("auto", False) == "fp32"
    assert choose_precision("fp32", True) == "fp32"
    with pytest.raises(ValueError, match="--precision"):
        choose_precision("int8", True)


def metadata(**changes) -> PlanMetadata:
    base = PlanMetadata("10.5.0", "NVIDIA H100 80GB HBM3", "9.0", "fp16", "ab" * 32,
                        profile_json(profile_shapes(TASKS["denoise"], ProfileSpec())))
    return dataclasses.replace(base, **changes)


def test_plan_tag_names_version_gpu_and_precision():
    assert metadata().tag == "trt10.5.0_nvidia-h100-80gb-hbm3_sm90_fp16"


def test_staleness(tmp_path):
    plan = tmp_path / "model.plan"
    assert "no plan" in stale_reason(plan, None, metadata())
    plan.write_bytes(b"plan")
    assert "no metadata" in stale_reason(plan, None, metadata())
    recorded = json.loads(metadata().to_json())
    assert stale_reason(plan, recorded, metadata()) is None
    for change, label in [({"tensorrt_version": "10.6.0"}, "TensorRT version"), ({"gpu_name": "NVIDIA L4"}, "GPU"),
                          ({"compute_capability": "8.9"}, "compute capability"), ({"precision": "fp32"}, "precision"),
                          ({"onnx_sha256": "cd" * 32}, "ONNX"),
                          ({"profile": profile_json(profile_shapes(TASKS["denoise"], ProfileSpec(max_side=1080)))},
                           "optimisation profile")]:
        assert stale_reason(plan, recorded, metadata(**change)).startswith(label)


def test_trtexec_command_matches_the_build():
    shapes = profile_shapes(TASKS["inpaint"], ProfileSpec())
    line = trtexec_command(Path("m dir/model.onnx"), Path("model.plan"), shapes, "fp16", 4096, Path("t.cache"))
    args = shlex.split(line)
    assert args[0] == "trtexec" and "--onnx=m dir/model.onnx" in args and "--fp16" in args
    t = TASKS["inpaint"].net_frames
    assert f"--minShapes=WINDOW:1x{t}x64x64x3,MASK_WINDOW:1x{t}x64x8x1" in args
    assert f"--optShapes=WINDOW:1x{t}x1080x1920x3,MASK_WINDOW:1x{t}x1080x240x1" in args
    assert f"--maxShapes=WINDOW:8x{t}x2160x2160x3,MASK_WINDOW:8x{t}x2160x2160x1" not in args
    assert f"--maxShapes=WINDOW:8x{t}x2160x2160x3,MASK_WINDOW:8x{t}x2160x270x1" in args
    assert "--memPoolSize=workspace:4096" in args and "--timingCacheFile=t.cache" in args
    assert "--fp16" not in shlex.split(trtexec_command(Path("m"), Path("p"), shapes, "fp32", 1, Path("c")))
    assert not any(a.startswith("--precisionConstraints") for a in args)


def test_trtexec_keeps_the_marked_layers_fp32_in_an_fp16_build():
    shapes = profile_shapes(TASKS["deblur"], ProfileSpec())
    args = shlex.split(trtexec_command(Path("m"), Path("p"), shapes, "fp16", 1, Path("c"), ["fp32/a", "fp32/b"]))
    assert "--maxShapes=WINDOW:8x5x2160x2160x3,BLUR_KERNEL:8x21x21" in args  # the kernel: batch only
    assert "--precisionConstraints=obey" in args
    assert "--layerPrecisions=fp32/a:fp32,fp32/b:fp32" in args and "--layerOutputTypes=fp32/a:fp32,fp32/b:fp32" in args
    fp32 = shlex.split(trtexec_command(Path("m"), Path("p"), shapes, "fp32", 1, Path("c"), ["fp32/a"]))
    assert not any(a.startswith("--layerPrecisions") for a in fp32)  # an FP32 build needs no pins


@pytest.mark.skipif(tensorrt_problem() is None, reason="TensorRT and a GPU are here")
def test_missing_gpu_stack_is_named_not_a_raw_import_error():
    with pytest.raises(GpuStackMissing) as missing:
        import_tensorrt()
        import_torch_cuda()
    assert "packaging/gpu/requirements.txt" in str(missing.value) or "CUDA" in str(missing.value)
    assert tensorrt_problem() == str(missing.value)


# Stand-ins for the TensorRT objects whose failures are reported by return value (None, False, -1)
# rather than by exception: the checks on them must hold on machines without TensorRT too.
class RefusingContext:
    def set_input_shape(self, name, shape):
        return False


class Engine:
    device_memory_size_v2 = 3 << 30

    def __init__(self, context):
        self.context = context

    def create_execution_context(self):
        return self.context


def test_run_plan_names_a_context_it_could_not_create():
    with pytest.raises(EngineBuildError, match=r"execution context.*3\.00 GiB.*--max-batch"):
        run_plan(Engine(None), {"WINDOW": np.zeros((1, 5, 8, 8, 3), np.uint8)})


def test_run_plan_names_an_input_shape_outside_the_profile():
    with pytest.raises(EngineBuildError, match=r"WINDOW of shape \[9, 5, 8, 8, 3\].*profile"):
        run_plan(Engine(RefusingContext()), {"WINDOW": np.zeros((9, 5, 8, 8, 3), np.uint8)})


def test_engine_memory_prefers_the_v2_size():
    assert engine_memory_bytes(Engine(None)) == 3 << 30


class BuilderConfig:
    """Accepts only timing caches made from bytes in `accepted`."""

    def __init__(self, accepted):
        self.accepted, self.cache = accepted, None

    def create_timing_cache(self, data):
        return data

    def set_timing_cache(self, cache, ignore_mismatch):
        if cache not in self.accepted:
            return False
        self.cache = cache
        return True


def test_timing_cache_loaded_replaced_or_refused():
    config = BuilderConfig({b"ok", b""})
    assert "loaded" in apply_timing_cache(config, b"ok", Path("t.cache")) and config.cache == b"ok"
    assert "rejected" in apply_timing_cache(config, b"other gpu", Path("t.cache")) and config.cache == b""
    assert "new timing cache" in apply_timing_cache(config, b"", Path("t.cache"))
    with pytest.raises(EngineBuildError, match="timing cache"):
        apply_timing_cache(BuilderConfig(set()), b"", Path("t.cache"))


@pytest.mark.gpu
@pytest.mark.skipif(tensorrt_problem() is not None, reason=NEEDS_TENSORRT)
def test_build_parity_and_reuse(tmp_path):
    from export.onnx_export import export_checkpoint
    from export.tensorrt_build import ensure_plan, load_engine
    from test_export_onnx import tiny_checkpoint

    task = TASKS["denoise"]
    onnx = export_checkpoint(tiny_checkpoint(tmp_path / "d.pt", "denoise"), tmp_path / "model.onnx", task=task).path
    spec = ProfileSpec(max_side=512)
    cache = tmp_path / "timing.cache"
    meta, reason = ensure_plan(onnx, tmp_path / "model.plan", task, spec, "auto", 1024, cache)
    assert reason and (tmp_path / "model.plan").stat().st_size > 0 and cache.is_file()
    assert json.loads((tmp_path / "model.plan.json").read_text())["tag"] == meta.tag
    assert ensure_plan(onnx, tmp_path / "model.plan", task, spec, "auto", 1024, cache)[1] is None
    engine = load_engine((tmp_path / "model.plan").read_bytes())
    assert 0 < engine_memory_bytes(engine) < 4 << 30
    with pytest.raises(EngineBuildError, match="outside its optimisation profile"):
        run_plan(engine, {"WINDOW": np.zeros((1, 5, 64, 1024, 3), np.uint8)})
