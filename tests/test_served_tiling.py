"""Frames larger than the network's max_side through the command line and a real tritonserver
whose networks say max_side 96: the client must cut 176x144 frames into tiles, and the server's
own statistics count one network inference per tile per frame (a client that ignored max_side
would send one per frame). The stitched frames match the untiled network without seams, and
inpainting keeps every pixel outside its mask through the tiles."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from client.tiling import plan_tiles
from conftest import inference_counts, task_server
from tests.test_client_media import decode_all, real_frames
from tests.test_inpaint_client import _write_png, _write_pngs, _inside_psnr
from tests.test_inpaint_serving import in_process as inpaint_in_process
from tests.test_serving import decode, in_process

pytestmark = [pytest.mark.server, pytest.mark.shipped_exports("denoise", "inpaint")]
ROOT = Path(__file__).resolve().parents[1]
MAX_SIDE = 96
TILES = len(plan_tiles(144, 176, MAX_SIDE))


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """denoise and inpaint whose networks take at most 96 px a side."""
    with task_server(tmp_path_factory.mktemp("max_side"), ["denoise", "inpaint"], max_side=MAX_SIDE) as server:
        yield server


def restore_pngs(url: str, frames: list[np.ndarray], folder: Path, *args: str) -> list[np.ndarray]:
    source = _write_pngs(folder / "in", frames)
    (folder / "out").mkdir()
    run = subprocess.run([sys.executable, "-m", "client.restore", "--quiet", source, "-o", str(folder / "out" / "%05d.png"),
                          "--url", url, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    return decode_all(folder / "out" / "%05d.png")[0]


def test_frames_larger_than_max_side_are_tiled_without_seams(small_server, tmp_path):
    assert TILES > 1
    frames = decode("carphone_pristine.mp4", 6)
    before = inference_counts(small_server, "denoise_net")[0]
    restored = restore_pngs(small_server.grpc_url, frames, tmp_path, "--task", "denoise")
    sent = inference_counts(small_server, "denoise_net", at_least=before + len(frames) * TILES)[0] - before
    assert sent == len(frames) * TILES, f"{sent} network inferences for {len(frames)} frames in {TILES} tiles"
    assert len(restored) == len(frames)
    for i, (expected, tiled) in enumerate(zip(in_process(frames), restored)):
        assert tiled.shape == expected.shape
        mse = np.mean((tiled.astype(float) - expected.astype(float)) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-10)) >= 45, f"frame {i}: tiled vs untiled below 45 dB"


@pytest.mark.skipif(not (ROOT / "training" / "checkpoints" / "inpaint.pt").is_file(), reason="inpaint ships no checkpoint")
def test_inpainting_through_tiles_keeps_unmasked_pixels_and_fills_like_the_untiled_network(small_server, tmp_path):
    clean = real_frames(7)
    mask = np.zeros((144, 176, 1), np.uint8)
    mask[60:84, 70:110] = 255  # across the seam between tiles
    stamped = [np.where(mask > 0, np.uint8(250), f) for f in clean]
    before = inference_counts(small_server, "inpaint_net")[0]
    restored = restore_pngs(small_server.grpc_url, stamped, tmp_path, "--task", "inpaint",
                            "--mask", _write_png(tmp_path / "mask.png", mask))
    expected = len(clean) * TILES
    assert inference_counts(small_server, "inpaint_net", at_least=before + expected)[0] - before == expected
    untiled = inpaint_in_process(np.stack(stamped), np.repeat(mask[None], len(clean), axis=0))
    keep = mask[..., 0] == 0
    for i, (out, source, original, reference) in enumerate(zip(restored, stamped, clean, untiled)):
        assert np.array_equal(out[keep], source[keep]), f"frame {i}: a pixel outside the mask changed"
        # Each tile sees less context than the whole frame: close to the untiled fill, far from the stamp.
        assert _inside_psnr(out, reference, mask) > 30, i
        assert _inside_psnr(out, original, mask) > _inside_psnr(source, original, mask) + 10, i
