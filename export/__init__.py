"""Checkpoint -> ONNX (uint8 edges, dynamic batch/H/W, parity vs PyTorch) -> TensorRT plan, and
installing the result into the Triton model repository for the backend this machine can run.

Modules: `onnx_export` (ONNX + parity), `tensorrt_build` (plan + staleness), `triton_config`
(config.pbtxt text from training/contract.py), `engine` (the `make engine` command),
`samples` (real video windows for parity checks), `parity` (difference measures).
"""
