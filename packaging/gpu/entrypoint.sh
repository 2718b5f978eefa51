#!/usr/bin/env bash
# Entry point of the GPU server image (packaging/gpu/Dockerfile): check what the container sees,
# build the TensorRT plan of every task that is missing or stale (`make engine` decides: TensorRT
# version, GPU, precision, ONNX and profile are recorded beside each plan), then run tritonserver
# with the flags of `make serve` (client/local_server.py: restricted admin protocols, no model
# control), bound to all interfaces of the container. Arguments go to tritonserver.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 packaging/gpu/check_image.py --gpu
# No venv here: the container's python3 has TensorRT; BACKEND=tensorrt fails instead of
# silently serving on CPU.
make engine PY=python3 BACKEND=tensorrt
exec python3 -m client.local_server --repository model_repository --host "${HOST:-0.0.0.0}" "$@"
