"""Shipped checkpoints keep their quality: each task's network, in-process through training's
serving path, on a fixed window of the held-out validation clip (3 windows, 128 px crops, the
degradation seeded by the centre frame), must reach a PSNR floor set a little under what the
shipped checkpoint measured on 2026-12-05 (denoise 32.60, deblur 30.61, sr4 29.33, inpaint 22.67
dB inside the mask). A regressed or swapped checkpoint fails here before it is served.
(inpaint measured 23.27 with the OpenCV propagation of the window model; 22.67 with the same
weights and the propagation inside its graph, training/propagation.py; 21.96 with none.)
(denoise and sr4 are the networks fine-tuned on realistic degradations that day; sr4's cell is
antialiased bicubic, which it gave up a little of to stop losing to bicubic on other scalers.)
denoise's weights of 2026-12-06 (dead-leaves stills, no cell of the robustness grid below its
input) measure 32.08 here: they gave up 0.5 dB of this sigma-25 crop (0.2-0.3 dB on bikes' full
frames) to stop harming clean and lightly noisy footage; the floor follows them. Fine-tuned against
the 2x2 stripe pattern (the same day, 11:00) they measure 32.03, and with a full-resolution
refinement stage (16:30) 32.05. sr4's weights of 11:45 (dead-leaves stills, no grid row below
bicubic; +0.04 dB on bikes' 6 full frames) measure 29.14 on its crop; deblur's with a refinement
stage (17:05) 31.33, fine-tuned with the PSNR loss (19:40) 31.54; sr4's fine-tuned with the PSNR
loss (20:30) 29.31, and with the downscalers drawn more evenly (22:20) 29.25; denoise's fine-tuned
with more compressed-only windows (22:50) 32.01. deblock (2026-12-07, H.264 CRF 35 on its crop,
input 30.84 dB) measures 31.09, where denoise's weights give 30.90. sr4's weights of 2026-12-07
08:05 (moving layers, the early weights of the run) measure 29.30; with one Lucas-Kanade update
per level in their alignment (08:50) denoise's weights measure 32.35 and deblock's 31.13; sr4's
with their residual on a bicubic upsample (10:40) 29.37."""
from __future__ import annotations

import pytest

from export.repository import CHECKPOINTS
from training.checkpoint import load_checkpoint
from training.contract import get_task
from training.evaluate import evaluate, psnr, validation_set

FLOORS_DB = {"denoise": 31.8, "deblock": 31.0, "deblur": 30.3, "sr4": 29.0, "inpaint": 22.35}
# Least gain over the degraded input (dB), where the input has a PSNR (compression leaves less to win).
GAINS_DB = {"denoise": 1.0, "deblock": 0.15, "deblur": 1.0}


@pytest.mark.parametrize("task", sorted(FLOORS_DB))
def test_shipped_checkpoint_reaches_its_floor_on_the_validation_window(task):
    path = CHECKPOINTS / f"{task}.pt"
    if not path.is_file():
        pytest.skip(f"{path} is not shipped")
    net, _ = load_checkpoint(path)
    val = validation_set(task, max(net.config.input_frames, get_task(task).window), count=3, crop=128)
    restored_db, _ = evaluate(net, val)
    note = ""
    if task in GAINS_DB:
        degraded_db = psnr(val.windows[:, val.windows.shape[1] // 2], val.targets)
        assert restored_db > degraded_db + GAINS_DB[task], f"{task}: {restored_db:.2f} dB vs {degraded_db:.2f} dB degraded"
        note = f" (degraded input {degraded_db:.2f} dB)"
    assert restored_db >= FLOORS_DB[task], f"{task}: {restored_db:.2f} dB{note} < floor {FLOORS_DB[task]} dB"
