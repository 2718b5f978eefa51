"""Start and stop a local tritonserver process (tests, benchmarks and `make demo`).

`TritonServer(repository)` launches the `tritonserver` launcher installed by `make setup` on
free ports, waits until every model is ready, and on exit stops it and keeps its log.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import tritonclient.grpc as grpcclient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tritonserver_executable() -> str:
    """The launcher in this interpreter's venv, else whatever `tritonserver` is on PATH."""
    beside = Path(sys.prefix) / "bin" / "tritonserver"
    if beside.exists():
        return str(beside)
    found = shutil.which("tritonserver")
    if not found:
        raise FileNotFoundError("tritonserver not found: run `make setup` (installs .venv/bin/tritonserver)")
    return found


class TritonServer:
    """A tritonserver on 127.0.0.1 serving `repository`; use as a context manager."""

    def __init__(self, repository: Path, log_path: Path, extra_args: tuple[str, ...] = (), ready_timeout_s: float = 120) -> None:
        self.repository = Path(repository)
        self.log_path = Path(log_path)
        self.extra_args = extra_args
        self.ready_timeout_s = ready_timeout_s
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> "TritonServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        cmd = [
            tritonserver_executable(), "--model-repository", str(self.repository),
            "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1", "--metrics-address", "127.0.0.1",
            "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
            "--metrics-port", str(self.metrics_port), "--model-control-mode", "none", *self.extra_args,
        ]
        # Own process group, so stopping it also stops the Python-backend stubs.
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        client = grpcclient.InferenceServerClient(self.grpc_url)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.process.returncode}; log:\n{self.log_tail()}")
            try:
                if client.is_server_ready():
                    return
            except Exception:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"tritonserver not ready after {self.ready_timeout_s:g} s; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout_s: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """Hard kill (a crashed server), stubs included."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
