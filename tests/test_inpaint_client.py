"""`python -m client.restore --task inpaint --mask MASK` end to end against a real tritonserver:
a still mask (a static watermark) and a mask sequence (a moving object), lossless PNG in and out so
that "pixels outside the mask come back unchanged" can be checked bit for bit."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.test_client_media import decode_all, make_clip, real_frames
from tests.test_client_server import _interrupted_then_rerun, _same_as_uninterrupted
from tests.test_inpaint_serving import in_process
from training.masks import blobs

pytestmark = [pytest.mark.server]
ROOT = Path(__file__).resolve().parents[1]
needs_inpaint = pytest.mark.skipif(not (ROOT / "training" / "checkpoints" / "inpaint.pt").is_file(),
                                   reason="inpaint ships no checkpoint")


def _write_png(path: Path, image: np.ndarray) -> str:
    """An RGB image, or a single-channel mask saved as grey RGB."""
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").save(str(path))
    return str(path)


def _write_pngs(folder: Path, images: list[np.ndarray]) -> str:
    """Images as folder/00001.png, 00002.png, ...; returns the pattern."""
    folder.mkdir()
    for i, image in enumerate(images, start=1):
        _write_png(folder / f"{i:05d}.png", image)
    return str(folder / "%05d.png")


def _restore(tmp_path: Path, url: str, frames: list[np.ndarray], mask: str) -> subprocess.CompletedProcess:
    source = _write_pngs(tmp_path / "in", frames)
    (tmp_path / "out").mkdir()
    return subprocess.run([sys.executable, "-m", "client.restore", "--quiet", source, "-o", str(tmp_path / "out" / "%05d.png"),
                           "--task", "inpaint", "--mask", mask, "--url", url],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def _inside_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    inside = np.broadcast_to(mask != 0, a.shape)
    mse = np.mean((a[inside].astype(float) - b[inside].astype(float)) ** 2)
    return 10 * np.log10(255**2 / mse)


@needs_inpaint
def test_still_mask_removes_a_watermark_and_keeps_every_other_pixel(triton_server, tmp_path):
    clean = real_frames(7)
    mask = np.zeros((*clean[0].shape[:2], 1), np.uint8)
    mask[100:116, 20:90] = 255  # a static caption bar
    stamped = [np.where(mask > 0, np.uint8(250), f) for f in clean]
    run = _restore(tmp_path, triton_server.grpc_url, stamped, _write_png(tmp_path / "mask.png", mask))
    assert run.returncode == 0, run.stderr
    out = decode_all(tmp_path / "out" / "%05d.png")[0]
    assert len(out) == len(clean)
    for restored, source, original in zip(out, stamped, clean):
        assert np.array_equal(restored[mask[..., 0] == 0], source[mask[..., 0] == 0])
        assert _inside_psnr(restored, original, mask) > _inside_psnr(source, original, mask) + 10


@needs_inpaint
def test_mask_sequence_follows_a_moving_object(triton_server, tmp_path):
    frames = real_frames(9)
    masks = blobs(len(frames), *frames[0].shape[:2], np.random.default_rng(2))[..., None]
    run = _restore(tmp_path, triton_server.grpc_url, frames, _write_pngs(tmp_path / "mask", list(masks)))
    assert run.returncode == 0, run.stderr
    out = decode_all(tmp_path / "out" / "%05d.png")[0]
    assert len(out) == len(frames)
    # Each frame was filled with its own mask: the same as the network in-process.
    for restored, source, mask, expected in zip(out, frames, masks, in_process(np.stack(frames), masks)):
        keep = mask[..., 0] == 0
        assert np.array_equal(restored[keep], source[keep])
        assert np.abs(restored.astype(int) - expected).max() <= 1


@needs_inpaint
@pytest.mark.parametrize("mask_count, message", [
    (5, r"mask '.*' has 5 frames, the video has more"),
    (9, r"mask '.*' has more frames than the video, which has 7"),
    (1, r"mask '.*' is 10x10, the video is 176x144"),
], ids=["shorter", "longer", "other-size"])
def test_a_mask_that_does_not_fit_the_video_is_a_one_line_error(triton_server, tmp_path, mask_count, message):
    frames = real_frames(7)
    size = (10, 10) if mask_count == 1 else frames[0].shape[:2]
    masks = blobs(mask_count, *size, np.random.default_rng(0))[..., None]
    mask = _write_pngs(tmp_path / "mask", list(masks))
    run = _restore(tmp_path, triton_server.grpc_url, frames, mask)
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1 and lines[0].startswith("restore: error: "), run.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not list((tmp_path / "out").glob("*.png"))  # no output (only the work folder, for --resume)


@needs_inpaint
def test_ctrl_c_then_resume_rewinds_the_whole_propagation_window(triton_server, tmp_path):
    """Inpainting holds 21 frames per window: a restore resumed at frame >= 12 must re-send the 10
    frames before it as context, or the first resumed frames are filled from a window mirrored at
    the wrong place. Interrupted after 3 segments of 4 and resumed, it equals an uninterrupted run."""
    frames = real_frames(26)
    mask = np.zeros((*frames[0].shape[:2], 1), np.uint8)
    mask[60:80, 40:100] = 255
    source = make_clip(tmp_path / "in.mkv", [np.where(mask > 0, np.uint8(250), f) for f in frames], codec="ffv1")
    extra = ("--task", "inpaint", "--mask", _write_png(tmp_path / "mask.png", mask))
    out = tmp_path / "restored.mkv"
    _, message, resumed, status = _interrupted_then_rerun(source, out, triton_server.grpc_url, triton_server.grpc_url,
                                                          lambda p: p.send_signal(signal.SIGINT), resume=True,
                                                          extra=extra, segments=3)
    done_before = int(message.split("; ")[1].split()[0])  # "N frames are kept"
    assert status == 130 and done_before >= 12 and f"26 frames; {26 - done_before} restored now" in resumed
    _same_as_uninterrupted(source, out, triton_server.grpc_url, extra, frames=26)
