"""Serving to remote clients safely, against real tritonservers: TLS on a self-signed certificate
made here with the openssl CLI, headers that reach the server (the admin-key header unlocks a
restricted protocol), and the admin key kept off our commands' arguments and output."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from client.local_server import ADMIN_HEADER, TritonServer, server_command
from conftest import task_repository
from tests.test_client_media import make_clip, real_frames

pytestmark = [pytest.mark.server, pytest.mark.shipped_exports("denoise")]
ROOT = Path(__file__).resolve().parents[1]


def restore(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client.restore", "--quiet", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost and its key (PEM)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "server.pem", folder / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def tls_server(certificate, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls_server")
    repository = task_repository(folder / "repository", ["denoise"])  # starts faster
    with TritonServer(repository, folder / "tritonserver-tls.log", tls=certificate) as server:
        yield server


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "in.mkv", real_frames(6), codec="ffv1")


def test_restores_through_tls_with_the_servers_certificate(tls_server, certificate, clip, tmp_path):
    out = tmp_path / "out.mp4"
    run = restore(str(clip), "-o", str(out), "--url", f"grpcs://{tls_server.grpc_url}",
                  "--root-certificates", str(certificate[0]))
    assert run.returncode == 0, run.stderr
    with subprocess.Popen(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
                           "-of", "csv=p=0", str(out)], stdout=subprocess.PIPE, text=True) as probe:
        assert probe.communicate()[0].strip() == "6"


@pytest.mark.parametrize("extra, message", [
    ((), "(if it serves TLS, add --ssl)"),                      # plaintext to a TLS port
    (("--ssl",), "cannot reach Triton at"),                     # TLS, but the self-signed certificate is not trusted
])
def test_tls_refusals_are_one_clear_line(tls_server, clip, tmp_path, extra, message):
    run = restore(str(clip), "-o", str(tmp_path / "out.mp4"), "--url", tls_server.grpc_url, *extra, timeout=60)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and message in lines[0], run.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_headers_reach_the_server(triton_server, clip, tmp_path):
    """Asking for a task the server lacks lists the served ones only when the model-repository
    protocol answers, which it does only for the admin-key header."""
    base = [str(clip), "-o", str(tmp_path / "out.mp4"), "--url", triton_server.grpc_url, "--task", "nosuch"]
    without = restore(*base, timeout=60)
    assert "does not list its models to clients" in without.stderr, without.stderr
    key_header = f"triton-grpc-protocol-{ADMIN_HEADER}={triton_server.admin_key}"
    with_key = restore(*base, "--header", key_header, timeout=60)
    assert "available: " in with_key.stderr and "denoise" in with_key.stderr.split("available: ")[1], with_key.stderr


def test_the_admin_key_is_never_taken_from_arguments_nor_printed(tmp_path, monkeypatch):
    serve = [sys.executable, "-m", "client.local_server", "--repository", str(tmp_path)]
    for args in (["--admin-key", "s3cret-on-argv"], ["--admin-key=s3cret-on-argv"]):
        run = subprocess.run(serve + args, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and "never taken on the command line" in run.stderr
        assert "s3cret" not in run.stdout + run.stderr
    (tmp_path / "key").write_text("from-a-file\n")
    from client.local_server import admin_key
    assert admin_key(tmp_path / "key") == "from-a-file"
    monkeypatch.setenv("RESTORE_ADMIN_KEY", "from-the-environment")
    assert admin_key(None) == "from-the-environment"
    # what tritonserver is given: the key in the restricted-protocol flags, nowhere else
    cmd = server_command(tmp_path, "127.0.0.1", 1, 2, 3, "from-the-environment")
    assert [a for a in cmd if "from-the-environment" in a] == [
        f"--grpc-restricted-protocol=model-repository,shared-memory,statistics,trace,logging:{ADMIN_HEADER}=from-the-environment",
        f"--http-restricted-api=model-repository,shared-memory,statistics,trace,logging:{ADMIN_HEADER}=from-the-environment"]
