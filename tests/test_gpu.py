"""Tests that need a CUDA GPU. They run wherever one and the packages they use exist (a
workstation, a cloud VM, the Triton container), not only inside the container; elsewhere each is
skipped with a reason that names exactly what is missing: the GPU, torch's CUDA build, ONNX
Runtime's CUDA provider, TensorRT, or tritonserver's TensorRT backend."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from export.engine import tensorrt_problem
from training.data import load_clip

pytestmark = [pytest.mark.gpu]
ROOT = Path(__file__).resolve().parents[1]


def cuda_problem() -> str | None:
    """Why torch cannot run on a CUDA GPU here, or None."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA GPU (torch.cuda.is_available() is False)"
    return None


def onnxruntime_cuda_problem() -> str | None:
    """Why ONNX Runtime cannot run on the GPU here, or None."""
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (it has {', '.join(providers)})"
    return cuda_problem()


def backend_directories() -> list[Path]:
    """Where the tritonserver this project starts looks for backends: the venv launcher's, the container's."""
    return [Path(sys.prefix) / "share" / "triton" / "backends", Path("/opt/tritonserver/backends")]


def triton_tensorrt_problem() -> str | None:
    """Why tritonserver cannot load a tensorrt_plan model here, or None."""
    problem = tensorrt_problem()
    if problem:
        return problem
    if not any((d / "tensorrt").is_dir() for d in backend_directories()):
        return f"tritonserver has no TensorRT backend (no tensorrt/ in {', '.join(map(str, backend_directories()))})"
    return None


CUDA = cuda_problem()
needs_cuda = pytest.mark.skipif(CUDA is not None, reason=f"needs a CUDA GPU: {CUDA}")


def real_window(height: int = 144, width: int = 176) -> np.ndarray:
    """uint8 (1, 5, H, W, 3): five real frames."""
    return np.ascontiguousarray(load_clip("carphone_pristine.mp4", max_frames=5)[None, :, :height, :width])


@needs_cuda
def test_a_few_training_steps_on_cuda_with_bf16_autocast(tmp_path):
    from training.checkpoint import load_checkpoint
    from training.config import parse_args
    from training.train import train

    out = tmp_path / "denoise.pt"
    result = train(parse_args(["--task", "denoise", "--channels", "8", "--frame-channels", "4", "--fusion-blocks", "1",
                               "--crop", "32", "--batch-size", "2", "--workers", "0", "--val-count", "1",
                               "--val-crop", "64", "--steps", "3", "--device", "cuda", "--run-dir", str(tmp_path),
                               "--out", str(out)]))
    assert result["step"] == 3 and np.isfinite(result["val_psnr"])
    _, extra = load_checkpoint(out)  # written from the GPU, read on the CPU
    assert "device cuda" in extra["machine"]


@needs_cuda
@pytest.mark.parametrize("task", ["denoise", "deblur", "sr4"])
def test_shipped_network_on_cuda_matches_the_cpu(task):
    """training's restore (planes prepared as served, then the uint8 ServingNet) on the GPU."""
    from training.checkpoint import load_checkpoint
    from training.evaluate import restore

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # fp32 on both sides
    net, _ = load_checkpoint(ROOT / "training" / "checkpoints" / f"{task}.pt")
    window = real_window()
    cpu = restore(net, window)
    gpu = restore(net.cuda(), window)
    assert np.abs(cpu.astype(int) - gpu).max() <= 1


ORT_CUDA = onnxruntime_cuda_problem()


@pytest.mark.skipif(ORT_CUDA is not None, reason=f"needs ONNX Runtime on a CUDA GPU: {ORT_CUDA}")
def test_onnx_runtime_cuda_provider_matches_the_cpu(tmp_path):
    import onnxruntime as ort

    from export.onnx_export import export_checkpoint
    from test_export_onnx import tiny_checkpoint

    onnx = export_checkpoint(tiny_checkpoint(tmp_path / "d.pt", "denoise"), tmp_path / "model.onnx").path
    feed = {"WINDOW": real_window()}
    cpu = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    gpu = ort.InferenceSession(str(onnx), providers=["CUDAExecutionProvider"]).run(None, feed)[0]
    assert np.abs(cpu.astype(int) - gpu).max() <= 1


TRITON_TRT = triton_tensorrt_problem()


@pytest.mark.server
@pytest.mark.skipif(TRITON_TRT is not None, reason=f"needs tritonserver with TensorRT on a CUDA GPU: {TRITON_TRT}")
def test_a_tensorrt_plan_config_loads_and_serves_what_pytorch_computes(tmp_path):
    """`make engine` on a GPU host: the tensorrt_plan <task>_net and the GPU window config load in
    a real tritonserver, and served frames match the network in PyTorch (FP16: >= 40 dB)."""
    import shutil

    from client.local_server import TritonServer
    from export import engine
    from tests.test_serving import Stream, decode, in_process, send_all

    repo = tmp_path / "repository"
    for name in ("denoise", "denoise_window", "denoise_net"):
        shutil.copytree(ROOT / "model_repository" / name, repo / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "model.onnx", "model.plan", "*.json"))
    assert engine.main(["--task", "denoise", "--backend", "tensorrt", "--repository", str(repo), "--max-side", "512",
                        "--timing-cache", str(tmp_path / "timing.cache")]) == 0
    assert 'platform: "tensorrt_plan"' in (repo / "denoise_net" / "config.pbtxt").read_text()
    frames = decode("carphone_pristine.mp4", 7)
    with TritonServer(repo, tmp_path / "tritonserver.log") as server:
        stream = Stream(server.grpc_url)
        send_all(stream, 5, frames)
        results, errors = stream.collect()
        stream.close()
    assert errors == [] and sorted(results[5]) == list(range(7))
    for i, expected in enumerate(in_process(frames)):
        mse = np.mean((results[5][i].astype(float) - expected) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-10)) >= 40, f"frame {i}"
