"""Installing `'.[client]'` into a fresh virtual environment (as `make setup` installs: uv with
pip's configuration) gives a working `restore` command that restores a clip against the test
server, and brings neither torch nor OpenCV nor ONNX Runtime: the client stays thin."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_client_media import make_clip, real_frames

pytestmark = [pytest.mark.server, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def test_the_client_extra_installs_alone_and_restores(triton_server, tmp_path):
    venv = tmp_path / "venv"
    # Without a pip of its own (ensurepip takes 5 s); installed the way `make setup` installs (the
    # uv beside this interpreter, given pip's configuration: 3 s where pip took 16 s).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    install = subprocess.run(["bash", str(ROOT / "packaging" / "install_requirements.sh"), str(venv), f"{ROOT}[client]"],
                             capture_output=True, text=True, timeout=900,
                             env={**os.environ, "PYTHON": sys.executable, "UV": str(Path(sys.executable).parent / "uv")})
    assert install.returncode == 0, install.stderr[-3000:]
    heavy = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import importlib.util as u; print([m for m in ('torch', 'cv2', 'onnxruntime', 'scipy') "
                            "if u.find_spec(m)])"], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert heavy.stdout.strip() == "[]"
    clip = make_clip(tmp_path / "in.mkv", real_frames(6), codec="ffv1")
    # Run outside the checkout, so only the installed package can be imported.
    run = subprocess.run([str(venv / "bin" / "restore"), "-q", str(clip), "-o", "out.mp4", "--url",
                          f"grpc://{triton_server.grpc_url}"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    with subprocess.Popen(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
                           "-of", "csv=p=0", str(tmp_path / "out.mp4")], stdout=subprocess.PIPE, text=True) as probe:
        assert probe.communicate()[0].strip() == "6"
    assert (venv / "bin" / "restore-serve").exists()
