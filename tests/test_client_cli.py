"""The restore command's promises that need no server: every flag explained, and each way a run
can be refused ends in one line `restore: error: ...`, a non-zero exit and no output file."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from client.errors import RestoreError
from client.local_server import free_port
from client.restore import make_folders, plan_outputs
from tests.test_client_media import CARPHONE, make_clip, real_frames

ROOT = Path(__file__).resolve().parents[1]


def restore(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client.restore", "--quiet", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restore: error: "), run.stderr
    return lines[0]


def test_help_explains_every_flag():
    run = subprocess.run([sys.executable, "-m", "client.restore", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0
    for flag in ["--output", "-y", "-n", "--task", "--url", "--ssl", "--root-certificates", "--private-key",
                 "--certificate-chain", "--header", "--codec", "--pix-fmt", "--crf", "--preset", "--format",
                 "--compare", "--mask", "--resume", "--segment-frames", "--max-in-flight", "--timeout", "--quiet"]:
        # each flag is followed by its explanation, not just listed in the usage line
        assert re.search(rf"{flag}[^\n]*\n?\s+\S", run.stdout.split("options:")[1]), flag


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("not_video", "is not a video FFmpeg can read"),
    ("same", "is the input: refusing"),
    ("no_folder", "output folder '.*' does not exist"),
    ("read_only", "is not writable"),
    ("bad_ext", "must end in .mp4, .mkv or be a pattern"),
    ("unreachable", "cannot reach Triton at 127.0.0.1:"),
])
def test_refusals_are_one_clear_line(tmp_path, case, message):
    clip = make_clip(tmp_path / "in.mp4", real_frames(3))
    notes = tmp_path / "notes.mp4"
    notes.write_text("hello")
    args = {
        "missing": [str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "out.mp4")],
        "not_video": [str(notes), "-o", str(tmp_path / "out.mp4")],
        "same": [str(clip), "-o", str(clip)],
        "no_folder": [str(clip), "-o", str(tmp_path / "no" / "out.mp4")],
        "read_only": [str(clip), "-o", "/sys/out.mp4"],
        "bad_ext": [str(clip), "-o", str(tmp_path / "out.avi")],
        "unreachable": [str(clip), "-o", str(tmp_path / "out.mp4")],
    }[case]
    line = one_error_line(restore(*args, "--url", f"127.0.0.1:{free_port()}"))
    assert re.search(message, line), line
    assert not (tmp_path / "out.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "notes.mp4"]  # no debris


def test_several_inputs_need_an_output_folder(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", real_frames(2))
    target = tmp_path / "taken.mp4"
    target.write_bytes(b"")
    line = one_error_line(restore(str(clip), str(CARPHONE), "-o", str(target)))
    assert "need an output folder" in line


def test_many_inputs_and_folders_map_to_one_output_each(tmp_path):
    (tmp_path / "clips").mkdir()
    for name in ("b.mkv", "a.mp4", "notes.txt"):
        (tmp_path / "clips" / name).write_bytes(b"")
    (tmp_path / "frames").mkdir()
    pairs = plan_outputs([str(tmp_path / "clips"), str(tmp_path / "frames" / "%05d.png")],
                         str(tmp_path / "out"), "mkv")
    assert [(Path(i).name, Path(o).relative_to(tmp_path).as_posix()) for i, o in pairs] == [
        ("a.mp4", "out/a.mkv"), ("b.mkv", "out/b.mkv"), ("%05d.png", "out/frames.mkv")]
    png = plan_outputs([str(tmp_path / "clips")], str(tmp_path / "pngs"), "png")
    assert Path(png[0][1]).relative_to(tmp_path).as_posix() == "pngs/a/%05d.png"
    assert not (tmp_path / "pngs").exists()  # planning creates nothing: folders come once inputs are checked
    make_folders(png, single=False)
    assert (tmp_path / "pngs" / "a").is_dir()
    with pytest.raises(RestoreError, match="would both be written as 'a'"):
        plan_outputs([str(tmp_path / "clips" / "a.mp4"), str(tmp_path / "a.mkv")], str(tmp_path / "out"), "mp4")


@pytest.mark.parametrize("flag, value, message", [
    ("--timeout", "-1", "argument --timeout: -1 is out of range: must be at least 0.1"),
    ("--timeout", "nan", "argument --timeout: nan is out of range"),
    ("--crf", "52", "argument --crf: 52 is out of range: must be between 0 and 51"),
    ("--segment-frames", "0", "argument --segment-frames: 0 is out of range: must be at least 1"),
    ("--max-in-flight", "two", "argument --max-in-flight: 'two' is not an integer"),
    ("--url", "http://localhost:8000", "is an HTTP address: this client speaks gRPC"),
    ("--url", "ftp://host", "unknown scheme 'ftp://'"),
    ("--url", "host:70000", "port 70000 is not between 1 and 65535"),
    ("--header", "novalue", "'novalue' is not KEY=VALUE"),
    ("--codec", "ffv1", "--codec ffv1 cannot be written to .mp4"),
    ("--pix-fmt", "rgb24", "--pix-fmt rgb24: libx264 takes"),
    ("--root-certificates", "/nonexistent.pem", "TLS file '/nonexistent.pem' does not exist"),
])
def test_bad_flags_are_one_clear_line(tmp_path, flag, value, message):
    clip = make_clip(tmp_path / "in.mp4", real_frames(2))
    line = one_error_line(restore(str(clip), "-o", str(tmp_path / "out.mp4"), flag, value))
    assert message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.parametrize("url, reached", [("localhost", "localhost:8001"), ("grpc://127.0.0.1:{port}", "127.0.0.1:{port}"),
                                          ("127.0.0.1:{port}", "127.0.0.1:{port}")])
def test_addresses_default_to_port_8001_and_take_grpc_scheme(tmp_path, url, reached):
    if url == "localhost":  # nothing must listen there for the message to be certain
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", 8001)) == 0:
                pytest.skip("a server listens on localhost:8001")
    port = free_port()
    clip = make_clip(tmp_path / "in.mp4", real_frames(2))
    line = one_error_line(restore(str(clip), "-o", str(tmp_path / "out.mp4"), "--url", url.format(port=port)))
    assert f"cannot reach Triton at {reached.format(port=port)}" in line, line


@pytest.mark.parametrize("answer, message", [(None, r"already exists \(-y overwrites it, -n skips it\)"),
                                             ("-n", r"already exists; not overwritten \(-n\)")])
def test_an_existing_output_is_not_replaced_without_y(tmp_path, answer, message):
    clip = make_clip(tmp_path / "in.mp4", real_frames(2))
    taken = tmp_path / "out.mp4"
    taken.write_bytes(b"precious")
    line = one_error_line(restore(str(clip), "-o", str(taken), *([answer] if answer else []),
                                  "--url", f"127.0.0.1:{free_port()}"))
    assert re.search(message, line), line
    assert taken.read_bytes() == b"precious"
    # -y goes on to the server (unreachable here): the refusal is the server's, not the file's
    line = one_error_line(restore(str(clip), "-o", str(taken), "-y", "--url", f"127.0.0.1:{free_port()}"))
    assert "cannot reach Triton" in line and taken.read_bytes() == b"precious"


def test_no_output_folder_is_created_when_no_input_is_readable(tmp_path):
    (tmp_path / "bad.mp4").write_text("not a video")
    run = restore(str(tmp_path / "bad.mp4"), str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "restored"),
                  "--url", f"127.0.0.1:{free_port()}")
    assert run.returncode == 1 and "is not a video FFmpeg can read" in run.stderr and "does not exist" in run.stderr
    assert not (tmp_path / "restored").exists()


def test_compare_needs_one_input_and_a_video_name(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", real_frames(2))
    out = str(tmp_path / "out")
    assert "--compare takes one input file" in one_error_line(restore(str(clip), str(clip), "-o", out, "--compare", "c.mp4"))
    assert "give it a .mp4 or .mkv name" in one_error_line(restore(str(clip), "-o", out + ".mp4", "--compare", "c/%05d.png"))
