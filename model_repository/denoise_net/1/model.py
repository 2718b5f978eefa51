"""Triton Python-backend adapter of `<task>_net` on CPU: ONNX Runtime on 1/<onnx_file>.

Thin on purpose: reading tensors out of requests and building responses is all that lives
here; validation, shape grouping, batching and splitting are in ort_runner.py (unit-tested
without Triton). The python backend puts this version directory on sys.path.

Config parameters: onnx_file (default model.onnx), intra_op_threads (default 0 = the cores shared
among the config's instances, each a process with its own session),
cpu_memory_arena (default true: ONNX Runtime keeps its peak memory for reuse; false gives it back
after every call, slower on large frames).
"""
from __future__ import annotations

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from ort_runner import OrtRunner, resolve_flag, resolve_threads


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        version_dir = Path(args["model_repository"]) / args["model_version"]
        onnx_path = version_dir / params.get("onnx_file", "model.onnx")
        self.model_name = args["model_name"]
        arena = resolve_flag("cpu_memory_arena", params.get("cpu_memory_arena", "true"))
        instances = sum(group.get("count", 1) for group in config.get("instance_group", [])) or 1
        self.runner = OrtRunner(onnx_path, resolve_threads(params.get("intra_op_threads", "0"), instances), arena)
        print(f"{self.model_name}: ONNX Runtime on {onnx_path}, inputs {self.runner.input_names}, "
              f"{self.runner.session.get_session_options().intra_op_num_threads} intra-op threads, "
              f"memory arena {'on' if arena else 'off'}", flush=True)

    def execute(self, requests: list) -> list:
        arrays = []
        for request in requests:
            tensors = {name: pb_utils.get_input_tensor_by_name(request, name) for name in self.runner.input_names}
            arrays.append({name: None if t is None else t.as_numpy() for name, t in tensors.items()})
        responses = []
        for result in self.runner.execute(arrays):
            if isinstance(result, str):
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"{self.model_name}: {result}")))
            else:
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(self.runner.output_name, result)]))
        return responses

    def finalize(self) -> None:
        self.runner = None
