"""The served grid (benchmarks/served_grid.py): each frame's window is the one the window model
serves, masks reach the client as a user would pass them, and whole clips through the session's
tritonserver match the in-process network where they must."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks import served_grid as sg
from benchmarks.pictures import write_mask
from benchmarks.robust_grid import Sample
from export.repository import load_model_code
from export.samples import read_window, sample_clip
from training.contract import get_task


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """9 real frames (carphone_pristine, 176x144)."""
    return read_window(sample_clip("carphone_pristine.mp4"), 9)[0]


def test_each_frame_gets_the_window_the_window_model_serves(clip):
    # inpaint's 21-frame window over a 9-frame clip mirrors more than once at each end.
    marks = np.arange(len(clip), dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    samples = sg.frame_samples("inpaint", Sample(clip, clip[4], marks), clip)
    indices = load_model_code("inpaint_window", "windowing").window_indices
    assert len(samples) == len(clip)
    for i, s in enumerate(samples):
        want = indices(i, get_task("inpaint").window, len(clip))
        np.testing.assert_array_equal(s.window, clip[want])
        assert [int(m[0, 0, 0]) for m in s.masks] == want, "each window's masks are its frames' masks"
        np.testing.assert_array_equal(s.target, clip[i])


def test_masks_reach_the_client_as_a_user_passes_them(tmp_path):
    static = np.zeros((3, 8, 16, 1), np.uint8)
    static[:, 2:5, 3:9] = 255
    path = write_mask(static, tmp_path / "logo")
    assert path.endswith("logo.png"), "a mask that never changes is one image"
    np.testing.assert_array_equal(cv2.imread(path)[..., :1], static[0])

    moving = static.copy()
    moving[1] = np.roll(moving[1], 4, axis=1)
    (tmp_path / "obj").mkdir()
    (tmp_path / "obj" / "00007.png").write_bytes(b"stale")  # a longer earlier run's last frame
    pattern = write_mask(moving, tmp_path / "obj")
    files = sorted((tmp_path / "obj").iterdir())
    assert [f.name for f in files] == ["00000.png", "00001.png", "00002.png"]
    for i, f in enumerate(files):
        np.testing.assert_array_equal(cv2.imread(str(f))[..., :1], moving[i])
    assert pattern == str(tmp_path / "obj" / "%05d.png")


@pytest.mark.server
@pytest.mark.slow
def test_whole_clips_served_as_in_process(triton_server, tmp_path):
    url = triton_server.grpc_url
    noisy = sg.run_clip(url, "denoise", "Gaussian sigma 25", "carphone_pristine.mp4", 5,
                        sg.ROOT / "training/checkpoints/denoise.pt", tmp_path)
    assert noisy["served"].psnr > noisy["input"].psnr + 5
    assert noisy["max_diff"] <= 1, "ONNX Runtime and PyTorch agree within a grey level"

    moving = sg.run_clip(url, "inpaint", "moving object 6%", "carphone_pristine.mp4", 5,
                         sg.ROOT / "training/checkpoints/inpaint.pt", tmp_path)
    assert moving["outside_changed"] == 0
    assert moving["max_diff"] <= 1
    assert moving["input"] is None and moving["served"].psnr > 15

    out = tmp_path / "served.md"
    sg.main(["--tasks", "sr4", "--clips", "carphone_pristine.mp4", "--frames", "3", "--url", url,
             "--workdir", str(tmp_path), "--out", str(out)])
    text = out.read_text()
    assert "## sr4" in text and text.count("carphone_pristine (176x144)") == len(sg.CELLS["sr4"])
    assert "rows below bicubic x4 by more than 0.1 dB" in text


def test_unknown_cell_is_named():
    with pytest.raises(SystemExit, match="no grid cell 'Gaussian sigma 3'.*Gaussian sigma 2"):
        sg.run_clip("127.0.0.1:1", "denoise", "Gaussian sigma 3", "carphone_pristine.mp4", 3,
                    sg.ROOT / "training/checkpoints/denoise.pt", sg.ROOT / "build" / "unused")


def test_table_counts_rows_below_input_and_leaves_clean_ones_out():
    from benchmarks.robust import Score

    def row(cell, inp, out, local=None):
        return {"cell": cell, "clip": "bikes", "size": "640x272", "input": Score(inp, 0.9),
                "served": Score(out, 0.9), "in-process": Score(local or out, 0.9), "max_diff": 1, "fps": 5.0}

    text = sg.table("denoise", [row("clean", 148.13, 41.5), row("Gaussian sigma 2", 42.0, 41.85),
                                row("JPEG 20", 30.0, 29.95, local=30.3)])
    assert "| clean | bikes (640x272) | identical | 41.50 / 0.900 | - |" in text
    assert "comes back at 41.50 dB" in text
    assert "1 of 2 rows below input by more than 0.1 dB; worst -0.15 (Gaussian sigma 2, bikes)" in text
    assert "largest gap 0.35 dB" in text
