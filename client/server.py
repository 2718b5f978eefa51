"""What the client learns from the server before streaming: that it is reachable, that the task's
ensemble is loaded, its tensor names and dtypes (from model metadata) and the window length and
scale (from the `parameters` of the ensemble steps' configs). Nothing here is hard-coded from the
training side: the server is the authority."""
from __future__ import annotations

from dataclasses import dataclass

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from .errors import RestoreError


@dataclass(frozen=True)
class TaskInfo:
    """A served task as the client needs it."""

    name: str
    frame_input: str         # UINT8 [.., H, W, 3]
    mask_input: str | None   # UINT8 [.., H, W, 1], inpainting only
    index_output: str        # INT64 frame index of each response
    restored_output: str     # UINT8 restored frame
    batched: bool            # tensors carry a leading batch dim of 1
    window: int              # frames per window T: responses lag T//2 frames
    scale: int | None        # None: the server does not say; read it off the first response
    max_side: int | None = None  # largest H or W the network takes; larger frames are tiled


def _reason(e: InferenceServerException) -> str:
    return (e.message() or str(e)).split("\n")[0]


def connect(url: str) -> grpcclient.InferenceServerClient:
    """A client for `url` whose server answers; a clear error otherwise."""
    try:
        client = grpcclient.InferenceServerClient(url)
    except (InferenceServerException, ValueError) as e:
        raise RestoreError(f"bad server address '{url}' ({e})") from None
    try:
        client.is_server_live(client_timeout=10)
    except InferenceServerException as e:
        client.close()
        raise RestoreError(f"cannot reach Triton at {url} ({_reason(e)})") from None
    return client


def _parameter(config: dict, key: str) -> int | None:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return int(value) if value else None


def describe_task(client: grpcclient.InferenceServerClient, url: str, task: str) -> TaskInfo:
    """The tensors, window and scale of the ensemble `task` as served at `url`."""
    try:
        ready = client.is_model_ready(task)
    except InferenceServerException as e:
        raise RestoreError(f"cannot query model '{task}' on {url} ({_reason(e)})") from None
    if not ready:
        raise RestoreError(f"model '{task}' is not ready on {url}; available: {_available(client)}")
    try:
        return _describe(client, url, task)
    except InferenceServerException as e:
        raise RestoreError(f"cannot read the configuration of '{task}' on {url} ({_reason(e)})") from None


def _available(client: grpcclient.InferenceServerClient) -> str:
    """The ready tasks, for the error message; a secured server may not list them."""
    try:
        index = client.get_model_repository_index(as_json=True).get("models", [])
    except InferenceServerException:
        return "unknown (this server does not list its models to clients)"
    tasks = sorted(m["name"] for m in index if m.get("state") == "READY"
                   and not m["name"].endswith(("_window", "_net")))
    return ", ".join(tasks) or "none"


def _describe(client: grpcclient.InferenceServerClient, url: str, task: str) -> TaskInfo:
    meta = client.get_model_metadata(task, as_json=True)
    config = client.get_model_config(task, as_json=True)["config"]

    def find(tensors: list[dict], dtype: str, last: str | None = None) -> str | None:
        for t in tensors:
            if t["datatype"] == dtype and (last is None or str(t["shape"][-1]) == last):
                return t["name"]
        return None

    frame = find(meta["inputs"], "UINT8", "3")
    index = find(meta["outputs"], "INT64")
    restored = find(meta["outputs"], "UINT8")
    if not (frame and index and restored):
        raise RestoreError(f"model '{task}' on {url} is not a restore task: it needs a UINT8 [H, W, 3] input and "
                           f"UINT8 + INT64 outputs, it has {meta['inputs']} -> {meta['outputs']}")
    window = scale = max_side = None
    for step in config.get("ensemble_scheduling", {}).get("step", []):
        step_config = client.get_model_config(step["model_name"], as_json=True)["config"]
        window = window or _parameter(step_config, "window")
        scale = scale or _parameter(step_config, "scale")
        max_side = max_side or _parameter(step_config, "max_side")
    if window is None:
        raise RestoreError(f"model '{task}' on {url} does not say its window length "
                           f"(parameter 'window' in its window model's config)")
    return TaskInfo(task, frame, find(meta["inputs"], "UINT8", "1"), index, restored,
                    batched=int(config.get("max_batch_size", 0)) > 0, window=window, scale=scale,
                    max_side=max_side)
