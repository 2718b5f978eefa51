"""What the client learns from the server before streaming: that it is reachable, that the task's
ensemble is loaded, its tensor names and dtypes (from model metadata) and the window length and
scale (from the `parameters` of the ensemble steps' configs). Nothing here is hard-coded from the
training side: the server is the authority. `Endpoint` says how to reach a server: its address,
TLS files and the headers sent with every call (an auth token for a gateway in front of Triton)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from .errors import RestoreError, ServerError


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


DEFAULT_PORT = 8001  # Triton's gRPC port
_ADDRESS = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^:/\[\]\s]+)(?::(?P<port>\d+))?$")


def parse_address(text: str) -> tuple[str, bool]:
    """`host[:port]`, `grpc://host[:port]` or `grpcs://host[:port]` as (host:port, TLS asked for);
    the port defaults to Triton's gRPC port 8001. ValueError names what is wrong."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "grpc", text
    if scheme.lower() in ("http", "https"):
        raise ValueError(f"'{text}' is an HTTP address: this client speaks gRPC, give host:port or "
                         f"grpc://host:port of Triton's gRPC endpoint (port {DEFAULT_PORT} by default, not 8000)")
    if scheme.lower() not in ("grpc", "grpcs"):
        raise ValueError(f"'{text}': unknown scheme '{scheme}://' (use host:port, grpc:// or grpcs://)")
    match = _ADDRESS.match(rest.rstrip("/"))
    if not match:
        raise ValueError(f"'{text}' is not a server address such as host:{DEFAULT_PORT} or grpc://host:{DEFAULT_PORT}")
    port = int(match["port"] or DEFAULT_PORT)
    if not 0 < port < 65536:
        raise ValueError(f"'{text}': port {port} is not between 1 and 65535")
    return f"{match['host']}:{port}", scheme.lower() == "grpcs"


@dataclass(frozen=True)
class Endpoint:
    """One server as the client reaches it. `str()` is its address, for messages."""

    url: str
    ssl: bool = False
    root_certificates: str | None = None  # PEM files, read by gRPC when the channel is made
    private_key: str | None = None
    certificate_chain: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return self.url

    @property
    def header_dict(self) -> dict[str, str] | None:
        return dict(self.headers) or None

    def client(self) -> grpcclient.InferenceServerClient:
        """A new channel to this server (one per concurrent stream)."""
        try:
            return grpcclient.InferenceServerClient(
                self.url, ssl=self.ssl, root_certificates=self.root_certificates, private_key=self.private_key,
                certificate_chain=self.certificate_chain)
        except (InferenceServerException, ValueError) as e:
            raise RestoreError(f"bad server address '{self.url}' ({e})") from None
        except OSError as e:  # a TLS file that cannot be read
            raise RestoreError(f"cannot read '{e.filename}' for TLS to {self.url} ({e.strerror})") from None


def _reason(e: InferenceServerException) -> str:
    return (e.message() or str(e)).split("\n")[0]


def connect(endpoint: Endpoint) -> grpcclient.InferenceServerClient:
    """A client for `endpoint` whose server answers; a clear error otherwise."""
    client = endpoint.client()
    try:
        client.is_server_live(headers=endpoint.header_dict, client_timeout=10)
    except InferenceServerException as e:
        client.close()
        hint = "" if endpoint.ssl else " (if it serves TLS, add --ssl)"
        raise ServerError(f"cannot reach Triton at {endpoint}{hint} ({_reason(e)})") from None
    return client


def _parameter(config: dict, key: str) -> int | None:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return int(value) if value else None


def describe_task(client: grpcclient.InferenceServerClient, server: Endpoint, task: str) -> TaskInfo:
    """The tensors, window and scale of the ensemble `task` as served at `server`."""
    try:
        ready = client.is_model_ready(task, headers=server.header_dict)
    except InferenceServerException as e:
        raise RestoreError(f"cannot query model '{task}' on {server} ({_reason(e)})") from None
    if not ready:
        raise RestoreError(f"model '{task}' is not ready on {server}; available: {_available(client, server)}")
    try:
        return _describe(client, server, task)
    except InferenceServerException as e:
        raise RestoreError(f"cannot read the configuration of '{task}' on {server} ({_reason(e)})") from None


def _available(client: grpcclient.InferenceServerClient, server: Endpoint) -> str:
    """The ready tasks, for the error message; a secured server may not list them."""
    try:
        index = client.get_model_repository_index(headers=server.header_dict, as_json=True).get("models", [])
    except InferenceServerException:
        return "unknown (this server does not list its models to clients)"
    tasks = sorted(m["name"] for m in index if m.get("state") == "READY"
                   and not m["name"].endswith(("_window", "_net")))
    return ", ".join(tasks) or "none"


def _describe(client: grpcclient.InferenceServerClient, server: Endpoint, task: str) -> TaskInfo:
    headers = server.header_dict
    meta = client.get_model_metadata(task, headers=headers, as_json=True)
    config = client.get_model_config(task, headers=headers, as_json=True)["config"]

    def find(tensors: list[dict], dtype: str, last: str | None = None) -> str | None:
        for t in tensors:
            if t["datatype"] == dtype and (last is None or str(t["shape"][-1]) == last):
                return t["name"]
        return None

    frame = find(meta["inputs"], "UINT8", "3")
    index = find(meta["outputs"], "INT64")
    restored = find(meta["outputs"], "UINT8")
    if not (frame and index and restored):
        raise RestoreError(f"model '{task}' on {server} is not a restore task: it needs a UINT8 [H, W, 3] input and "
                           f"UINT8 + INT64 outputs, it has {meta['inputs']} -> {meta['outputs']}")
    window = scale = max_side = None
    for step in config.get("ensemble_scheduling", {}).get("step", []):
        step_config = client.get_model_config(step["model_name"], headers=headers, as_json=True)["config"]
        window = window or _parameter(step_config, "window")
        scale = scale or _parameter(step_config, "scale")
        max_side = max_side or _parameter(step_config, "max_side")
    if window is None:
        raise RestoreError(f"model '{task}' on {server} does not say its window length "
                           f"(parameter 'window' in its window model's config)")
    return TaskInfo(task, frame, find(meta["inputs"], "UINT8", "1"), index, restored,
                    batched=int(config.get("max_batch_size", 0)) > 0, window=window, scale=scale,
                    max_side=max_side)
