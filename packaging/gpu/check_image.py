"""Print which Python, TensorRT, PyTorch and CUDA the GPU server image sees, and fail (status 1)
naming what is wrong: the TensorRT Python API missing or of another version than the container's
libnvinfer (a plan built with it would not load in tritonserver), PyTorch not a CUDA 12 build, or,
with --gpu (the entry point), no GPU visible.

    python3 packaging/gpu/check_image.py [--tensorrt-version 10.5.0] [--gpu]
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from export.tensorrt_build import GpuStackMissing, import_tensorrt  # noqa: E402

# Where the Triton container keeps TensorRT's libraries (the tensorrt backend loads them).
LIBNVINFER = ("/usr/lib/x86_64-linux-gnu/libnvinfer.so.10*", "/usr/local/tensorrt/lib/libnvinfer.so.10*")


def library_version(patterns: tuple[str, ...] = LIBNVINFER) -> str | None:
    """major.minor.patch of the first libnvinfer found, from its getInferLibVersion(); None when
    there is none or it does not load."""
    for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
        try:
            value = ctypes.CDLL(path).getInferLibVersion()
        except (OSError, AttributeError) as err:
            print(f"check_image: cannot read the version of {path} ({err})")
            return None
        # TensorRT 10 encodes major*10000 + minor*100 + patch (8.x used major*1000).
        major, rest = divmod(value, 10000) if value >= 100000 else divmod(value, 1000)
        return f"{major}.{rest // 100}.{rest % 100}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tensorrt-version", help="the version the TensorRT Python API must have")
    parser.add_argument("--gpu", action="store_true", help="also require a visible CUDA GPU")
    args = parser.parse_args(argv)
    problems = []
    print(f"check_image: Python {sys.version.split()[0]} ({sys.executable})")
    try:
        trt = import_tensorrt()
        print(f"check_image: TensorRT Python API {trt.__version__} (module {trt.__name__})")
        if args.tensorrt_version and trt.__version__ != args.tensorrt_version:
            problems.append(f"TensorRT Python API is {trt.__version__}, the image wants {args.tensorrt_version}")
    except GpuStackMissing as err:
        trt = None
        problems.append(str(err))
    container = library_version()
    print(f"check_image: container libnvinfer {container or 'not found'}")
    if trt is not None and container and not trt.__version__.startswith(container):
        problems.append(f"TensorRT Python API {trt.__version__} differs from the container's libnvinfer "
                        f"{container}: plans it builds would not load in tritonserver")
    try:
        import torch

        print(f"check_image: torch {torch.__version__}, CUDA build {torch.version.cuda}, "
              f"GPU visible: {torch.cuda.is_available()}")
        if not (torch.version.cuda or "").startswith("12."):
            problems.append(f"torch {torch.__version__} is not a CUDA 12 build (the container has CUDA 12.6)")
        if args.gpu and not torch.cuda.is_available():
            problems.append("no CUDA GPU visible (docker run --gpus all? driver >= 560, or R535/R545 on data-centre GPUs)")
        elif torch.cuda.is_available():
            print(f"check_image: GPU 0 {torch.cuda.get_device_name(0)}")
    except ImportError as err:
        problems.append(f"torch is not importable ({err})")
    for problem in problems:
        print(f"check_image: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
