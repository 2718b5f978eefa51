"""The restore command against a real tritonserver: whole files restored end to end, re-ordered
correctly, many files over several connections, resume after an interruption, and a server
killed mid-stream. Clips are short real frames (carphone, 176x144) so this stays quick on CPU."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from client.colour import Colour
from client.local_server import free_port
from client.tiling import plan_tiles
from conftest import inference_counts, task_server
from tests.test_client_media import assert_same_audio, decode_all, make_clip, packets, psnr, real_frames

pytestmark = [pytest.mark.server, pytest.mark.shipped_exports("denoise")]
ROOT = Path(__file__).resolve().parents[1]


SLOW_FRAMES = 20  # frames in the slow clip (slow_clip)
BITS, PITCH, SIDE = 8, 10, 8  # up to 8 bits as 8x8 squares every 10 px along the top: 80 px wide


def stamped(frames: list[np.ndarray], tag: int = 0, index_bits: int = 5) -> list[np.ndarray]:
    """Copies of `frames` where frame i carries i (low `index_bits` bits) and `tag` (the bits
    above) as black and white squares: an independent record of which source frame an output is."""
    out = []
    for i, frame in enumerate(frames):
        frame = frame.copy()
        code = i | tag << index_bits
        for bit in range(BITS):
            frame[1 : 1 + SIDE, 1 + PITCH * bit : 1 + PITCH * bit + SIDE] = 255 * (code >> bit & 1)
        out.append(frame)
    return out


def read_stamps(frames: list[np.ndarray]) -> list[int]:
    """The codes `stamped` wrote, read back from the squares' centres (noise and restoration
    move a square's mean by far less than half the black-white step)."""
    return [sum(int(f[3 : SIDE - 1, 3 + PITCH * bit : PITCH * bit + SIDE - 1].mean() > 128) << bit for bit in range(BITS))
            for f in frames]


def noisy(frames: list[np.ndarray], sigma: float = 20, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def cli(*args: str, quiet: bool = True) -> list[str]:
    return [sys.executable, "-m", "client.restore", *(["--quiet"] if quiet else []), *args]


def restore(*args: str, quiet: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args, quiet=quiet), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def noisy_clip(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """24 noisy carphone frames stamped with their index, losslessly stored, with an AAC track;
    and the clean stamped frames."""
    clean = stamped(real_frames(24))
    path = make_clip(tmp_path_factory.mktemp("clips") / "noisy.mkv", noisy(clean), codec="ffv1", audio=True)
    return path, clean


@pytest.fixture(scope="module")
def slow_clip(tmp_path_factory) -> Path:
    """SLOW_FRAMES noisy frames at twice the carphone size: slow enough (~0.1 s a frame) to
    interrupt after two 4-frame segments with three more to go."""
    frames = [cv2.resize(f, None, fx=2, fy=2) for f in noisy(real_frames(SLOW_FRAMES))]
    return make_clip(tmp_path_factory.mktemp("clips") / "slow.mkv", frames, codec="ffv1", audio=True)


def test_restores_a_clip_end_to_end(triton_server, noisy_clip, tmp_path):
    source, clean = noisy_clip
    out = tmp_path / "restored.mp4"
    run = restore(str(source), "-o", str(out), "--url", triton_server.grpc_url, "--crf", "12")
    assert run.returncode == 0, run.stderr
    frames, times, _ = decode_all(out)
    assert len(frames) == 24 and times == pytest.approx(decode_all(source)[1], abs=1e-3)
    assert read_stamps(frames) == list(range(24))  # every frame where it was
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 25
    assert_same_audio(out, source)  # the AAC track, packet for packet, at its times
    inputs = decode_all(source)[0]
    before = np.mean([psnr(n, c) for n, c in zip(inputs, clean)])
    after = np.mean([psnr(r, c) for r, c in zip(frames, clean)])
    assert after > before + 1, (before, after)  # denoised, not just copied or garbled
    assert list(tmp_path.iterdir()) == [out]  # no work folder or temporary left behind


def test_output_holds_the_frames_in_source_order_whatever_order_they_come_back(triton_server, noisy_clip, tmp_path):
    """Several frames in flight and segments of 5: responses arrive out of order and segments end
    mid-window; each output frame still carries its own source frame's stamp, and is closer to its
    own clean frame than to either neighbour's."""
    source, clean = noisy_clip
    out = tmp_path / "restored.mkv"
    run = restore(str(source), "-o", str(out), "--url", triton_server.grpc_url, "--max-in-flight", "3",
                  "--segment-frames", "5")
    assert run.returncode == 0, run.stderr
    written = decode_all(out)[0]
    assert read_stamps(written) == list(range(24))
    for i in range(1, 23):
        own = psnr(written[i], clean[i])
        assert own > psnr(written[i], clean[i - 1]) and own > psnr(written[i], clean[i + 1]), i


@pytest.mark.parametrize("first", [0, 1])
def test_image_sequence_in_and_out(triton_server, tmp_path, first):
    """The output sequence is numbered like the input (FFmpeg's image2 starts at 0..4)."""
    (tmp_path / "in").mkdir()
    for i, f in enumerate(noisy(real_frames(7)), start=first):
        av.VideoFrame.from_ndarray(f, format="rgb24").save(str(tmp_path / "in" / f"{i:05d}.png"))
    (tmp_path / "out").mkdir()
    run = restore(str(tmp_path / "in" / "%05d.png"), "-o", str(tmp_path / "out" / "%04d.png"),
                  "--url", triton_server.grpc_url)
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(tmp_path / "out")) == [f"{i:04d}.png" for i in range(first, first + 7)]
    assert decode_all(tmp_path / "out" / "%04d.png")[0][0].shape == (144, 176, 3)


def test_many_files_over_two_connections_come_back_unmixed(triton_server, tmp_path):
    host, port = triton_server.grpc_url.split(":")
    (tmp_path / "clips").mkdir()
    sizes = {"a": (144, 176), "b": (96, 128), "c": (64, 80)}
    for i, (name, size) in enumerate(sizes.items()):
        frames = stamped(real_frames(6 + 2 * i, size), tag=i + 1)
        make_clip(tmp_path / "clips" / f"{name}.mkv", noisy(frames, seed=i), codec="ffv1")
    run = restore(str(tmp_path / "clips"), "-o", str(tmp_path / "out") + "/", "--format", "mkv",
                  "--url", f"{host}:{port}", "--url", f"localhost:{port}")
    assert run.returncode == 0, run.stderr
    for i, (name, size) in enumerate(sizes.items()):
        frames = decode_all(tmp_path / "out" / f"{name}.mkv")[0]
        assert len(frames) == 6 + 2 * i and frames[0].shape == (*size, 3)
        # Each output frame is its own file's, in its own place.
        assert read_stamps(frames) == [(i + 1) << 5 | k for k in range(6 + 2 * i)], name


@pytest.mark.parametrize("args, message", [
    (["--task", "nope"], "model 'nope' is not ready on .*; available: "),
    (["--mask", "x.png"], "task 'denoise' takes no mask"),
])
def test_server_side_refusals_are_one_line(triton_server, noisy_clip, tmp_path, args, message):
    run = restore(str(noisy_clip[0]), "-o", str(tmp_path / "out.mp4"), "--url", triton_server.grpc_url, *args)
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1 and lines[0].startswith("restore: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out.mp4").exists()


def test_zero_frame_video_is_refused(triton_server, tmp_path):
    empty = tmp_path / "empty.y4m"  # a video stream header, then no frames
    empty.write_text("YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\n")
    run = restore(str(empty), "-o", str(tmp_path / "out.mp4"), "--url", triton_server.grpc_url)
    assert run.returncode != 0 and "no decodable video frames" in run.stderr
    assert not (tmp_path / "out.mp4").exists()


def _wait_for_segments(folder: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(folder.glob("seg-*"))) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {count} segments in {folder} after {timeout} s")


def _interrupted_then_rerun(source: Path, out: Path, url_first: str, url_again: str, interrupt,
                            resume: bool, extra: tuple[str, ...] = (), segments: int = 2) -> tuple:
    """Start a restore, interrupt it after `segments` segments, check the failure, then run it again."""
    # A shell without job control (CI running us in the background) starts children with SIGINT
    # ignored; a user's Ctrl-C reaches a foreground process with the default disposition.
    process = subprocess.Popen(cli(str(source), "-o", str(out), "--url", url_first, "--segment-frames", "4", *extra),
                               cwd=ROOT, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_segments(out.parent / f".{out.name}.restore", segments, process)
    interrupted_at = time.monotonic()
    interrupt(process)
    _, stderr = process.communicate(timeout=30)
    failed_after = time.monotonic() - interrupted_at
    assert process.returncode != 0 and not out.exists()
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restore: error: ") and "--resume" in lines[0], stderr
    again = restore(str(source), "-o", str(out), "--url", url_again, "--segment-frames", "4", *extra,
                    *(["--resume"] if resume else []), quiet=False)
    assert again.returncode == 0, again.stderr
    return failed_after, lines[0], again.stderr, process.returncode


def _uninterrupted(source: Path, reference: Path, url: str, extra: tuple[str, ...] = ()) -> list[np.ndarray]:
    """The frames of an uninterrupted restore of `source` into `reference`."""
    assert restore(str(source), "-o", str(reference), "-y", "--url", url, "--segment-frames", "4", *extra).returncode == 0
    return decode_all(reference)[0]


def _same_frames(out: Path, reference: list[np.ndarray], frames: int = SLOW_FRAMES) -> None:
    a, b = decode_all(out)[0], reference
    # Lossless output: equal up to ONNX Runtime's batch-size-dependent rounding (<= 1 level, rare).
    assert len(a) == len(b) == frames
    assert max(np.abs(x.astype(int) - y).max() for x, y in zip(a, b)) <= 1
    assert np.mean([np.mean(x != y) for x, y in zip(a, b)]) < 0.001


def _same_as_uninterrupted(source: Path, out: Path, url: str, extra: tuple[str, ...] = (), frames: int = SLOW_FRAMES) -> None:
    _same_frames(out, _uninterrupted(source, out.parent / f"reference{out.suffix}", url, extra), frames)


@pytest.fixture(scope="module")
def slow_reference(triton_server, slow_clip, tmp_path_factory) -> list[np.ndarray]:
    """The slow clip restored without interruption, once for the tests that interrupt it."""
    return _uninterrupted(slow_clip, tmp_path_factory.mktemp("reference") / "reference.mkv", triton_server.grpc_url)


def test_ctrl_c_then_resume_equals_an_uninterrupted_run(triton_server, slow_clip, slow_reference, tmp_path):
    url = triton_server.grpc_url
    out = tmp_path / "restored.mkv"
    _, message, resumed, status = _interrupted_then_rerun(slow_clip, out, url, url,
                                                          lambda p: p.send_signal(signal.SIGINT), resume=True)
    assert status == 130
    assert message.startswith("restore: error: interrupted; ") and "restored now" in resumed
    done_before = int(message.split("; ")[1].split()[0])  # "N frames are kept"
    assert f"{SLOW_FRAMES} frames; {SLOW_FRAMES - done_before} restored now" in resumed  # finished segments not redone
    _same_frames(out, slow_reference)


def test_server_killed_mid_stream_fails_fast_then_the_same_command_succeeds(triton_server, slow_clip, slow_reference, tmp_path):
    out = tmp_path / "restored.mkv"
    with task_server(tmp_path, ["denoise"]) as doomed:
        # "Server back" is the session's server: the same denoise entries, another port.
        failed_after, message, again, _ = _interrupted_then_rerun(slow_clip, out, doomed.grpc_url,
                                                               triton_server.grpc_url, lambda p: doomed.kill(),
                                                               resume=False)
    assert failed_after < 10, failed_after
    assert "failed after" in message or "no answer" in message
    assert "discarded" in again  # without --resume it starts afresh, and says so
    _same_frames(out, slow_reference)


@pytest.mark.parametrize("size", [(1, 1), (5, 7)], ids=["1x1", "7x5"])
def test_tiny_odd_frames_are_restored_at_their_size(triton_server, tmp_path, size):
    clip = make_clip(tmp_path / "tiny.mkv", real_frames(4, size), codec="ffv1", pix_fmt="yuv444p")
    out = tmp_path / "tiny.mp4"
    run = restore(str(clip), "-o", str(out), "--url", triton_server.grpc_url, quiet=False)
    assert run.returncode == 0, run.stderr
    assert "yuv444p" in run.stderr  # said plainly: 4:2:0 cannot hold odd sides
    frames = decode_all(out)[0]
    assert len(frames) == 4 and frames[0].shape == (*size, 3)


def test_truncated_file_restores_what_decodes(triton_server, tmp_path):
    clip = make_clip(tmp_path / "full.mkv", real_frames(60, (64, 80)), codec="ffv1")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    decodable = len(decode_all(cut)[0])
    out = tmp_path / "out.mkv"
    run = restore(str(cut), "-o", str(out), "--url", triton_server.grpc_url, quiet=False)
    assert run.returncode == 0, run.stderr
    assert f"input ended at frame {decodable}" in run.stderr
    assert len(decode_all(out)[0]) == decodable


def test_an_unreachable_server_among_several_is_skipped(triton_server, tmp_path):
    for name in "ab":
        make_clip(tmp_path / f"{name}.mkv", real_frames(5, (48, 64)), codec="ffv1")
    dead = f"127.0.0.1:{free_port()}"
    run = restore(str(tmp_path / "a.mkv"), str(tmp_path / "b.mkv"), "-o", str(tmp_path / "out"),
                  "--url", dead, "--url", triton_server.grpc_url)
    assert run.returncode == 0, run.stderr
    assert f"restore: warning: cannot reach Triton at {dead}" in run.stderr
    assert all(len(decode_all(tmp_path / "out" / f"{n}.mp4")[0]) == 5 for n in "ab")


def _children(pid: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of the processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append((int(entry.name), (entry / "cmdline").read_bytes()))
        except (OSError, ValueError):
            continue
    return found


def test_a_killed_model_stub_is_reported_not_a_hang(tmp_path):
    # Frames 4x the carphone size make the network slow enough (~1 s a frame) to kill it mid-stream.
    big = [cv2.resize(f, None, fx=4, fy=4) for f in real_frames(12)]
    clip = make_clip(tmp_path / "big.mkv", big, codec="ffv1")
    with task_server(tmp_path, ["denoise"]) as server:
        process = subprocess.Popen(cli(str(clip), "-o", str(tmp_path / "out.mkv"), "--url", server.grpc_url,
                                       "--segment-frames", "1", "--timeout", "20"),
                                   cwd=ROOT, stderr=subprocess.PIPE, text=True)
        _wait_for_segments(tmp_path / ".out.mkv.restore", 1, process)
        stub = next(pid for pid, cmd in _children(server.process.pid) if b"denoise_net" in cmd)
        os.kill(stub, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = process.communicate(timeout=60)
        elapsed = time.monotonic() - killed
    assert process.returncode != 0 and elapsed < 10, (elapsed, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restore: error: "), stderr
    assert "not healthy" in lines[0] or "no answer" in lines[0]
    assert not (tmp_path / "out.mkv").exists()


def test_faithful_output_through_the_server(triton_server, tmp_path):
    """Variable frame rate, colour tags, audio and subtitles survive the whole served path."""
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 700, 740]  # ms
    colour = Colour(matrix=1, range=2, primaries=1, trc=1)  # BT.709, full range
    clip = make_clip(tmp_path / "in.mkv", noisy(real_frames(10, (64, 96))), codec="libx264", pts=pts,
                     time_base=Fraction(1, 1000), colour=colour, audio=True, subtitles=True)
    for kind in ("mp4", "mkv"):
        out = tmp_path / f"out.{kind}"
        run = restore(str(clip), "-o", str(out), "--url", triton_server.grpc_url, quiet=False)
        assert run.returncode == 0, run.stderr
        assert decode_all(out)[1] == pytest.approx([p / 1000 for p in pts], abs=1e-3)
        assert_same_audio(out, clip)
        with av.open(str(out)) as c:
            tags = Colour.of(c.streams.video[0].codec_context)
        if kind == "mp4":
            assert tags == colour and "subtitle" in run.stderr and "dropped" in run.stderr
        else:  # lossless RGB: tagged as RGB, with the source's primaries and transfer
            assert (tags.primaries, tags.trc) == (1, 1)
            assert packets(out, "subtitle") == packets(clip, "subtitle")


@pytest.mark.long
def test_4k_frames_are_tiled_to_the_network_max_side(triton_server, tmp_path):
    # 3840 > max_side 2160: the client streams two overlapping tiles and stitches them (the
    # bounded version, a 96-px max_side on carphone frames, is tests/test_served_tiling.py).
    uhd = [cv2.resize(f, (3840, 2160), interpolation=cv2.INTER_CUBIC) for f in real_frames(2)]
    clip = make_clip(tmp_path / "uhd.mkv", uhd, codec="ffv1")
    out = tmp_path / "uhd_restored.mkv"
    before = inference_counts(triton_server, "denoise_net")[0]
    run = restore(str(clip), "-o", str(out), "--url", triton_server.grpc_url, timeout=600)
    assert run.returncode == 0, run.stderr
    expected = 2 * len(plan_tiles(2160, 3840, 2160))
    assert inference_counts(triton_server, "denoise_net", at_least=before + expected)[0] - before == expected
    frames = decode_all(out)[0]
    assert len(frames) == 2 and frames[0].shape == (2160, 3840, 3)


def test_compare_writes_the_input_left_and_the_restored_frames_right(triton_server, noisy_clip, tmp_path):
    source, _ = noisy_clip
    out, compare = tmp_path / "out.mkv", tmp_path / "compare.mkv"
    out.write_bytes(b"old")  # -y replaces it
    run = restore(str(source), "-o", str(out), "-y", "--compare", str(compare), "--url", triton_server.grpc_url)
    assert run.returncode == 0, run.stderr
    inputs, restored, sides = decode_all(source)[0], decode_all(out)[0], decode_all(compare)[0]
    assert len(sides) == len(restored) == 24 and sides[0].shape == restored[0].shape
    middle = restored[0].shape[1] // 2
    for before, after, side in zip(inputs, restored, sides):  # all lossless: equal, pixel for pixel
        assert (side[:, : middle - 1] == before[:, : middle - 1]).all()
        assert (side[:, middle + 1 :] == after[:, middle + 1 :]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.mkv", "out.mkv"]


def test_a_file_whose_server_dies_is_finished_on_another_url(triton_server, slow_clip, slow_reference, tmp_path):
    """Two slow files over two servers, one killed mid-file: its file is retried on the other,
    from its completed segments, and comes out as an uninterrupted run would."""
    for name in "ab":
        (tmp_path / f"{name}.mkv").write_bytes(slow_clip.read_bytes())
    with task_server(tmp_path, ["denoise"]) as doomed:
        process = subprocess.Popen(cli(str(tmp_path / "a.mkv"), str(tmp_path / "b.mkv"), "-o", str(tmp_path / "out"),
                                       "--format", "mkv", "--segment-frames", "4",
                                       "--url", doomed.grpc_url, "--url", triton_server.grpc_url),
                                   cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for name in "ab":  # both files under way, one on each server
            _wait_for_segments(tmp_path / "out" / f".{name}.mkv.restore", 1, process)
        doomed.kill()
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert f"retrying on {triton_server.grpc_url}" in stderr and "already restored; continuing" in stderr, stderr
    for name in "ab":
        _same_frames(tmp_path / "out" / f"{name}.mkv", slow_reference)
