"""The GPU server image (packaging/gpu): its pin file resolves for the container's Python and
platform, `make engine` runs there without a venv, its checks fail loudly here (no TensorRT, no
GPU), and every task's TensorRT profile builds and fits (largest tensor and memory at the profile's
maximum, by shape inference on the exported ONNX)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from export.plan_memory import (DEFAULT_BUDGET_GIB, ELEMENT_LIMIT, GIB, PROFILES, TaskProfile, check_profiles,
                                footprint, max_shapes)
from export.triton_config import NetOptions, net_config
from training.contract import TASKS

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "packaging" / "gpu"
PINS = GPU / "requirements.txt"
# nvcr.io/nvidia/tritonserver:24.10-py3: CPython 3.10 on Ubuntu 22.04 (glibc 2.35), x86_64.
CONTAINER_PYTHON = "3.10"
CONTAINER_GLIBC_MINOR = 35
OFFLINE = re.compile(r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|"
                     r"ConnectTimeout|ProxyError|Max retries exceeded")


def pins() -> list[str]:
    return [line.split("#")[0].strip() for line in PINS.read_text().splitlines() if line.split("#")[0].strip()]


def resolve(requirements: list[str], tmp_path: Path, deps: bool) -> subprocess.CompletedProcess:
    """`pip install --dry-run` of `requirements` as the container's pip would see them."""
    platforms = [arg for minor in range(5, CONTAINER_GLIBC_MINOR + 1)
                 for arg in ("--platform", f"manylinux_2_{minor}_x86_64")]
    listed = tmp_path / "requirements.txt"
    listed.write_text("\n".join(requirements) + "\n")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
           "--only-binary=:all:", "--python-version", CONTAINER_PYTHON, *platforms,
           "--target", str(tmp_path / "target"), "-r", str(listed), *([] if deps else ["--no-deps"])]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if result.returncode and OFFLINE.search(result.stderr):
        pytest.skip(f"the package index is not reachable: {OFFLINE.search(result.stderr).group(0)}")
    return result


def test_every_pin_is_exact():
    for line in pins():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*", line), f"{PINS}: not an exact pin: {line}"


@pytest.mark.slow
def test_pins_exist_for_the_container_python(tmp_path):
    """Each pin has a wheel for CPython 3.10 on manylinux x86_64 (torch is checked by the full
    resolve below: the image installs its CUDA 12.6 build from PyTorch's index)."""
    result = resolve([p for p in pins() if not p.startswith("torch==")], tmp_path, deps=False)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("RESTORE_FULL_PIN_RESOLVE"),
                    reason="the full resolve downloads torch and its CUDA wheels (minutes): set RESTORE_FULL_PIN_RESOLVE=1")
def test_pin_file_resolves_with_dependencies(tmp_path):
    result = resolve(pins(), tmp_path, deps=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_image_installs_the_pinned_tensorrt_of_its_container():
    dockerfile = (GPU / "Dockerfile").read_text()
    assert re.search(r"^FROM nvcr\.io/nvidia/tritonserver:24\.10-py3$", dockerfile, re.MULTILINE)
    bindings = next(p for p in pins() if p.startswith("tensorrt-cu12-bindings=="))
    assert f"ARG TENSORRT_VERSION={bindings.split('==')[1]}" in dockerfile
    assert "whl/cu126" in dockerfile  # the CUDA of the 24.10 container


def test_make_engine_in_the_image_uses_its_python_without_a_venv():
    dry = subprocess.run(["make", "-n", "engine", "PY=python3", "BACKEND=tensorrt", "TASKS=denoise sr4"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "venv" not in dry and "install_launchers" not in dry
    assert "python3 -m export.engine --task $t --backend tensorrt" in dry
    default = subprocess.run(["make", "-n", "engine"], cwd=ROOT, capture_output=True, text=True).stdout
    assert ".venv/bin/python -m export.engine" in default


def test_entrypoint_builds_then_serves_with_the_safe_flags():
    script = GPU / "entrypoint.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    build, serve = text.index("make engine PY=python3 BACKEND=tensorrt"), text.index("python3 -m client.local_server")
    assert text.index("check_image.py --gpu") < build < serve


def test_image_check_fails_naming_what_is_missing_here():
    """This machine has neither TensorRT nor a CUDA torch: the check says so and fails."""
    result = subprocess.run([sys.executable, str(GPU / "check_image.py"), "--gpu"], capture_output=True, text=True)
    assert f"Python {sys.version.split()[0]}" in result.stdout
    if "TensorRT Python API" in result.stdout and "GPU 0" in result.stdout:
        pytest.skip("this machine has TensorRT and a GPU")
    assert result.returncode == 1
    assert "FAILED" in result.stderr


@pytest.mark.slow
def test_every_profile_builds_and_fits_the_budget(served_repository):
    footprints, problems = check_profiles(served_repository, list(TASKS.values()), DEFAULT_BUDGET_GIB)
    assert problems == []
    assert set(footprints) == set(TASKS)
    for name, fp in footprints.items():
        assert fp.largest_elements < ELEMENT_LIMIT, name
        assert fp.activation_bytes > fp.io_bytes > 0, name
    assert sum(fp.total_bytes for fp in footprints.values()) <= DEFAULT_BUDGET_GIB * GIB


@pytest.mark.slow
def test_the_old_sr4_profile_is_caught(served_repository):
    """Batch 8 at 2160 (the profile before per-task ones): sr4's features pass 2^31 elements."""
    task = TASKS["sr4"]
    model = onnx.load(str(served_repository / task.net_model / "1" / "model.onnx"))
    fp = footprint(model, max_shapes(task, TaskProfile(max_batch=8, max_side=2160)), "fp32")
    assert fp.largest_elements >= ELEMENT_LIMIT
    assert fp.total_bytes > 24 * GIB


def test_gpu_config_follows_the_profile():
    for name, profile in PROFILES.items():
        config = net_config(TASKS[name], NetOptions(backend="tensorrt", max_side=profile.max_side,
                                                    max_batch=profile.max_batch))
        assert config.max_batch_size == profile.max_batch
        assert config.parameters["max_side"].string_value == str(profile.max_side)
