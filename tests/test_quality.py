"""Quality benchmark and model cards: the baselines do what they claim, the tables get written."""
from __future__ import annotations

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from benchmarks import quality as q
from export.repository import CHECKPOINTS
from training.checkpoint import save_checkpoint
from training.evaluate import psnr, validation_set
from training.model_card import train_command, write_card
from training.network import NetConfig, VideoRestorationNet

TINY = NetConfig(channels=8, frame_channels=4, fusion_blocks=1)


@pytest.fixture(scope="module")
def val():
    return validation_set("denoise", 5, count=1, crop=64, sigma=25.0)


def test_nlm_denoises_a_real_noisy_frame(val):
    noisy = psnr(val.windows[0, 2], val.targets[0])
    assert psnr(q.nlm(val.windows[0], 15.0, 1), val.targets[0]) > noisy + 3
    assert psnr(q.nlm(val.windows[0], 15.0, 5), val.targets[0]) > noisy + 3


def test_unsharp_and_upscale(val):
    w = val.targets[0][None].repeat(5, axis=0)  # a clean window
    np.testing.assert_array_equal(q.unsharp(w, 2.0, 0.0), w[2])
    detail = lambda x: np.abs(np.diff(x.astype(float), axis=1)).mean()  # noqa: E731
    assert detail(q.unsharp(w, 2.0, 1.5)) > detail(w[2])
    assert q.upscale(w[:, :16, :24], cv2.INTER_CUBIC).shape == (64, 96, 3)


def test_tuned_picks_the_best_setting(val):
    make = lambda offset: lambda w: np.clip(w[2].astype(int) + offset, 0, 255).astype(np.uint8)  # noqa: E731
    name, score, _, note = q.tuned("shift", make, [(-20,), (0,), (20,)], val)
    assert score == pytest.approx(psnr(val.windows[:, 2], val.targets)) and "(0,)" in note


@pytest.fixture(scope="module")
def plain_checkpoint(tmp_path_factory):
    """A seeded tiny denoise network saved under a fixed name: its export is cached (conftest.py)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("plain") / "denoise.pt"
    save_checkpoint(path, VideoRestorationNet(TINY), task="denoise")
    return path


def test_onnx_speed_of_a_tiny_net(plain_checkpoint):
    assert q.onnx_frames_per_second(plain_checkpoint, "denoise", 32, 32, warmup=1, calls=2) > 0


def test_benchmark_and_card_end_to_end(tmp_path):
    save_checkpoint(tmp_path / "denoise.pt", VideoRestorationNet(TINY), task="denoise", step=0,
                    train_config={"task": "denoise", "channels": 8})
    out = tmp_path / "table.md"
    q.main(["--checkpoints", str(tmp_path), "--count", "1", "--crop", "64", "--sigmas", "25", "--out", str(out)])
    text = out.read_text()
    for method in ("degraded input", "OpenCV NLM, 1 frame", "OpenCV NLM, 5 frames", "ours"):
        assert f"| {method}" in text
    card = write_card("denoise", tmp_path / "denoise.pt", tmp_path / "denoise.md", count=1)
    assert "bikes.mp4" in card and card.count("| Gaussian sigma=") == 3
    assert "--channels 8" in train_command({"task": "denoise", "channels": 8})


@pytest.mark.shipped_exports("denoise")
def test_speed_table_times_the_aligned_graph_with_its_flow(monkeypatch):
    """An aligned network's flow runs inside its graph: the speed table times the graph `make
    engine` exports (reused from build/onnx_cache), flow included, and says the network is
    aligned. Which of an aligned and an unaligned network is faster is a benchmark's figure
    (benchmarks/RESULTS.md), not asserted: timed beside `make test`'s other worker it flipped."""
    timed = []
    session = ort.InferenceSession

    def recording(path, *args, **kwargs):
        timed.append({node.op_type for node in onnx.load(str(path)).graph.node})
        return session(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    val = validation_set("denoise", 5, count=1, crop=64)
    (row,) = q.speed_table([("a", CHECKPOINTS / "denoise.pt")], val, calls=1)[2:]
    cells = [c.strip() for c in row.split("|")]
    assert "aligned" in cells[2] and float(cells[6]) > 0
    assert timed and "GridSample" in timed[-1], timed
