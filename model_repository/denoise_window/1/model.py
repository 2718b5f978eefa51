"""Triton Python-backend adapter for `<task>_window`: per-stream sliding windows (decoupled).

Each request carries one frame of a sequence (sequence batcher, `oldest` strategy: at most one
request per sequence in a batch, in order). For each request this sends zero or more responses
(WINDOW, FRAME_INDEX[, MASK_WINDOW]) and then the FINAL flag. The logic lives in windowing.py.
Inpainting's masks are checked against their frame's size and held bit-packed (`held_planes`):
MASK_WINDOW carries 8 pixels per byte, which the network's graph unpacks.

Config parameter `device`: "cpu" (default; NumPy ring buffers) or "cuda" (GPU hosts, written by
`make engine` beside FORCE_CPU_ONLY_INPUT_TENSORS "no"): each frame moves onto this instance's
GPU (`model_instance_device_id`) and is copied into the stream's ring buffer (a torch CUDA tensor)
within its request, since Triton releases the request's buffer afterwards; windows leave by
DLPack straight to the TensorRT plan.
Config parameters max_side, max_streams (at most 256) and max_held_mib: the limits windowing.py
checks before a frame is held; a refused request gets an error naming the limit, and every
other stream goes on untouched.
Output BLUR_KERNEL (deblur's config has it): each window also carries its stream's blur kernel,
estimated by blur_kernel.py (a copy of training/blur_kernel.py placed by `make engine`; NumPy on a
fixed-size crop, outside the lock) from the centre frame of every EVERY-th window and reused in
between (one estimate costs several frames' budget; blur changes slowly); the net deconvolves the
window by it in its graph.
"""
from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import triton_python_backend_utils as pb_utils

from windowing import MIB, Limits, StreamError, StreamTable, Window, held_planes

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
# Input plane -> output name; MASK only exists in the inpaint task's config.
PLANES = {"FRAME": "WINDOW", "MASK": "MASK_WINDOW"}
# An output estimated from the window rather than windowed from an input (deblur's config only).
BLUR_KERNEL = "BLUR_KERNEL"


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.model_name = args["model_name"]
        self.inputs = [i["name"] for i in config["input"] if i["name"] in PLANES]
        self.outputs = [PLANES[name] for name in self.inputs]
        self.device = params.get("device", "cpu")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"{self.model_name}: parameter device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda":
            import torch  # only GPU hosts need torch in the serving environment

            self.torch = torch
            self.cuda = torch.device("cuda", int(args["model_instance_device_id"]))
        self.kernel_estimator = None
        self.kernels: dict[int, object] = {}  # deblur: each stream's PeriodicKernel
        if BLUR_KERNEL in (o["name"] for o in config["output"]):
            from blur_kernel import PeriodicKernel  # copied beside this file by `make engine`

            self.kernel_estimator = PeriodicKernel
            self.outputs.append(BLUR_KERNEL)
        limits = Limits(max_side=int(params.get("max_side", Limits.max_side)),
                        max_streams=int(params.get("max_streams", Limits.max_streams)),
                        max_held_bytes=int(params.get("max_held_mib", Limits.max_held_bytes // MIB)) * MIB)
        self.table = StreamTable(int(params["window"]), float(params.get("idle_timeout_s", "60")), limits)
        self.lock = threading.Lock()
        # The family must outlive its metrics, so it is kept on self.
        self.metric_family = pb_utils.MetricFamily(
            name="restore_window_active_sequences",
            description="Streams whose sliding-window state is held in memory",
            kind=pb_utils.MetricFamily.GAUGE,
        )
        self.active = self.metric_family.Metric(labels={"model": self.model_name})
        self.stop = threading.Event()
        # Triton never tells a backend that a sequence went idle: reap on a timer.
        self.reaper = threading.Thread(target=self._reap_loop, daemon=True)
        self.reaper.start()

    def execute(self, requests: list) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                corrid, end, windows = self._handle(request)
                # send() copies the response's tensors into shared memory before it returns, so the
                # next window (which may overwrite this one's view of the ring) is taken after it.
                for window in windows:
                    if self.kernel_estimator is not None:
                        window = self._with_kernel(corrid, window)
                    sender.send(self._response(window))
                if end:
                    self.kernels.pop(corrid, None)
                sender.send(flags=FINAL)
            except Exception as exc:  # one bad request must not take down the batch or the stub
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{self.model_name}: {exc}")), flags=FINAL)
        return None

    def _handle(self, request) -> tuple[int, bool, list[Window]]:
        """(sequence id, whether it ended, the windows this frame completes)."""
        def scalar(name: str) -> int:
            return int(pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)[0])

        corrid, start, end = scalar("CORRID"), bool(scalar("START")), bool(scalar("END"))
        planes = []
        for name in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise StreamError(f"sequence {corrid}: input {name} is missing")
            array = self._to_device(tensor)
            if array.ndim != 4 or array.shape[0] != 1 or min(array.shape[1:3]) < 1:
                raise StreamError(f"sequence {corrid}: {name} must be [1, H, W, C] with H, W >= 1, got {list(array.shape)}")
            planes.append(array[0])
        self.table.limits.check_sides(corrid, tuple(planes))  # before any per-frame work
        planes = held_planes(corrid, tuple(planes))
        if start:
            self.kernels.pop(corrid, None)  # a reused sequence id starts a new stream
        with self.lock:
            before = len(self.table.streams)
            try:
                return corrid, end, self.table.handle(corrid, start, end, planes)
            finally:
                # A metric update is an IPC round trip: only when the number of streams changed.
                if len(self.table.streams) != before:
                    self.active.set(len(self.table.streams))

    def _to_device(self, tensor: "pb_utils.Tensor"):
        if self.device == "cpu":
            return tensor.as_numpy()
        # Onto our GPU (a no-op when Triton placed it there already). No copy of our own: the stream's
        # ring buffer copies the frame in during this request, before Triton frees the source.
        return self.torch.from_dlpack(tensor.to_dlpack()).to(self.cuda)

    def _on_host(self, planes: tuple) -> list[np.ndarray]:
        return [p if self.device == "cpu" else p.cpu().numpy() for p in planes]

    def _on_device(self, planes: list[np.ndarray]) -> tuple:
        return tuple(planes if self.device == "cpu" else (self.torch.from_numpy(p).to(self.cuda) for p in planes))

    def _with_kernel(self, corrid: int, window: Window) -> Window:
        """The window plus its stream's blur kernel (re-estimated from this centre frame when due)."""
        estimator = self.kernels.get(corrid)
        if estimator is None:  # not setdefault: that would build an estimator for every window
            estimator = self.kernels[corrid] = self.kernel_estimator()
        frames = window.planes[0]
        centre = self._on_host((frames[len(frames) // 2],))[0]
        return dataclasses.replace(window, planes=window.planes + self._on_device([estimator(centre)]))

    def _response(self, window: Window) -> "pb_utils.InferenceResponse":
        tensors = [pb_utils.Tensor("FRAME_INDEX", np.array([[window.index]], dtype=np.int64))]
        for name, plane in zip(self.outputs, window.planes):
            if self.device == "cpu":
                tensors.append(pb_utils.Tensor(name, plane[np.newaxis]))
            else:
                # A copy: the window may be a view of the ring buffer, which the stream's next
                # frame or next window overwrites while the plan may still be reading.
                tensors.append(pb_utils.Tensor.from_dlpack(name, plane.unsqueeze(0).clone()))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _reap_loop(self) -> None:
        interval = min(5.0, max(0.5, self.table.idle_timeout_s / 4))
        while not self.stop.wait(interval):
            with self.lock:
                dead = self.table.reap()
                for corrid in dead:
                    self.kernels.pop(corrid, None)
                if dead:
                    self.active.set(len(self.table.streams))
            for corrid in dead:
                pb_utils.Logger.log_warn(f"{self.model_name}: reaped sequence {corrid} (idle > {self.table.idle_timeout_s:g} s)")

    def finalize(self) -> None:
        self.stop.set()
        self.reaper.join(timeout=5)
