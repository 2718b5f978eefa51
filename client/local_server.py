"""Start a local tritonserver with safe defaults: `make serve`, `make demo`, tests, benchmarks.

`server_command` is the one place the server's flags are chosen: bound to 127.0.0.1 unless told
otherwise, `--model-control-mode none`, and the model-repository, shared-memory, statistics,
trace and logging protocols behind an admin key (Triton's restricted-protocol flags).
`TritonServer(repository)` runs it on free ports and waits until every model is ready;
`restore-serve` (`python -m client.local_server`, `make serve`) runs it in the foreground.

The admin key comes from $RESTORE_ADMIN_KEY or a file (`--admin-key-file`), never from this
command's arguments, and is never printed. tritonserver itself only takes it on its command line,
so it is visible in `ps` to users of the same host: run the server where only its operator logs in
(a container or a pod), and rotate the key if that does not hold.
"""
from __future__ import annotations

import argparse
import os
import secrets
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
        raise FileNotFoundError("tritonserver not found: in a checkout run `make setup` (installs .venv/bin/tritonserver); "
                                "after `pip install '.[serve]'` run `bash packaging/install_launchers.sh VENV` "
                                "from the checkout, or use the GPU image (packaging/gpu)")
    return found


# Protocols only an operator needs; inference, health, metadata and model-config stay open.
RESTRICTED = "model-repository,shared-memory,statistics,trace,logging"
ADMIN_HEADER = "admin-key"  # gRPC clients send it as "triton-grpc-protocol-admin-key"


def server_command(repository: Path, host: str, http_port: int, grpc_port: int, metrics_port: int,
                   admin_key: str, extra_args: tuple[str, ...] = ()) -> list[str]:
    """The tritonserver command line with this project's safe defaults."""
    restricted = f"{RESTRICTED}:{ADMIN_HEADER}={admin_key}"
    return [
        tritonserver_executable(), "--model-repository", str(repository), "--model-control-mode", "none",
        "--http-address", host, "--grpc-address", host, "--metrics-address", host,
        "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
        f"--grpc-restricted-protocol={restricted}", f"--http-restricted-api={restricted}", *extra_args,
    ]


def tls_args(certificate: Path, key: Path, client_ca: Path | None = None) -> tuple[str, ...]:
    """tritonserver flags for TLS on gRPC; with `client_ca`, clients must show a certificate it signed."""
    args = ("--grpc-use-ssl=true", f"--grpc-server-cert={certificate}", f"--grpc-server-key={key}")
    if client_ca is not None:
        args += ("--grpc-use-ssl-mutual=true", f"--grpc-root-cert={client_ca}")
    return args


class TritonServer:
    """A tritonserver on 127.0.0.1 serving `repository`; use as a context manager. With `tls`
    (certificate, key: PEM files) its gRPC endpoint speaks TLS only."""

    def __init__(self, repository: Path, log_path: Path, extra_args: tuple[str, ...] = (), ready_timeout_s: float = 120,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.repository = Path(repository)
        self.log_path = Path(log_path)
        self.tls = tls
        self.extra_args = extra_args + (tls_args(*tls) if tls else ())
        self.ready_timeout_s = ready_timeout_s
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.admin_key = secrets.token_hex(16)
        # The Python backend's shared-memory regions get this server's own prefix, so the ones a
        # killed server leaves in /dev/shm (hundreds of MB each with inpaint) can be removed.
        self.shm_prefix = f"restore_{secrets.token_hex(6)}_"
        self.extra_args += (f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",)
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
        cmd = server_command(self.repository, "127.0.0.1", self.http_port, self.grpc_port,
                             self.metrics_port, self.admin_key, self.extra_args)
        # Own process group, so stopping it also stops the Python-backend stubs.
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        client = grpcclient.InferenceServerClient(self.grpc_url, ssl=self.tls is not None,
                                                  root_certificates=self.tls and str(self.tls[0]))
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.remove_shared_memory()
                raise RuntimeError(f"tritonserver exited with {self.process.returncode}; log:\n{self.log_tail()}")
            try:
                if client.is_server_ready():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"tritonserver not ready after {self.ready_timeout_s:g} s; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout_s: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.remove_shared_memory()

    def kill(self) -> None:
        """Hard kill (a crashed server), stubs included."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def shared_memory(self) -> list[Path]:
        """The Python backend's shared-memory regions of this server in /dev/shm."""
        return sorted(Path("/dev/shm").glob(self.shm_prefix + "*"))

    def remove_shared_memory(self) -> None:
        """Remove the regions a stopped or killed server left (a killed one cannot)."""
        for region in self.shared_memory():
            region.unlink(missing_ok=True)

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def admin_key(key_file: Path | None) -> str:
    """The operator's admin key: from `key_file`, else $RESTORE_ADMIN_KEY, else a random one that
    nobody learns (the restricted protocols then stay closed until a restart with a key)."""
    if key_file is not None:
        key = key_file.read_text().strip()
        if not key:
            raise ValueError(f"--admin-key-file {key_file} is empty")
        return key
    return os.environ.get("RESTORE_ADMIN_KEY") or secrets.token_hex(16)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="restore-serve", allow_abbrev=False, description="Run tritonserver in the foreground with safe defaults (make serve). "
        "Other flags (e.g. --grpc-use-ssl=true --grpc-server-cert=... --grpc-server-key=...) go to tritonserver.")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"), help="model repository (default: model_repository)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the server: see the README)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port, used by the client (default 8001)")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002)")
    parser.add_argument("--admin-key-file", type=Path,
                        help="file holding the admin key that unlocks the restricted protocols "
                             f"({RESTRICTED}) via the '{ADMIN_HEADER}' header (default: $RESTORE_ADMIN_KEY; "
                             "without either the restricted protocols stay closed)")
    args, extra = parser.parse_known_args(argv)
    if any(a.startswith("--admin-key") and a != "--admin-key-file" for a in extra):
        parser.error("the admin key is never taken on the command line: set RESTORE_ADMIN_KEY or use --admin-key-file")
    if not args.repository.is_dir():
        parser.error(f"--repository: {args.repository} is not a directory (run `make engine` first)")
    try:
        key = admin_key(args.admin_key_file)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    try:
        cmd = server_command(args.repository, args.host, args.http_port, args.grpc_port, args.metrics_port, key,
                             tuple(extra))
    except FileNotFoundError as e:
        parser.error(str(e))
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
