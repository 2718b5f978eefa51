"""The robustness grid (benchmarks/robust.py, robust_grid.py, ffmpeg_filters.py) on tiny real
inputs: the real ffmpeg binary and real clip frames, restorers whose effect we know, so the grid
must pass a harmless one and fail a harmful one."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from benchmarks import ffmpeg_filters
from benchmarks.robust import (CARD_HEADINGS, compare_markdown, run_grid, run_row, stripe_bias, summary_markdown, targets,
                               update_card)
from benchmarks.robust_crops import TILE, areas, picture
from benchmarks.robust_grid import (CUT_FRAMES, GRID_STILLS, HELDOUT_CLIPS, HELDOUT_STILLS, OVERLAY_VALUE, PROBE_FRAME,
                                   Sample, grid, held_out_sources, probe, scene_cut, sources)
from training.data import STILLS, TRAIN_CLIPS, load_clip
from training.masks import OVERLAYS


def centre(windows: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    return windows[:, windows.shape[1] // 2].copy()


def blurred(windows: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in centre(windows, masks)])


@pytest.fixture(scope="module")
def denoise_rows():
    cells = [c for c in grid("denoise") if c.name in ("clean", "Gaussian sigma 2", "Gaussian sigma 10")]
    srcs = sources("denoise", 1, 64, clips=("bikes.mp4",), stills=())
    return run_grid("denoise", cells, srcs, {"identity": centre, "blur": blurred}, classical=True, log=lambda s: None)


def test_harmless_restorer_passes_do_no_harm_and_harmful_one_fails(denoise_rows):
    reached = {label: {t: ok for t, ok, _ in targets("denoise", denoise_rows, label)} for label in ("identity", "blur")}
    no_harm = "no degraded row below input by more than 0.1 dB"
    assert reached["identity"][no_harm] and reached["identity"]["clean >= 40 dB"]
    assert not reached["blur"][no_harm] and not reached["blur"]["clean >= 40 dB"]
    assert "**no**" in summary_markdown("denoise", denoise_rows, "blur")
    side_by_side = compare_markdown("denoise", denoise_rows).splitlines()
    assert side_by_side[0] == "| cell | reference | identity | blur |"
    assert side_by_side[-1] == "| rows > 0.1 dB below reference | | 0 | 1 |"  # blur harms sigma 2, helps sigma 10


def test_compression_targets_are_deblocks_and_noise_targets_denoises(denoise_rows):
    cells = [c for c in grid("deblock") if c.name in ("clean", "JPEG 20")]
    srcs = sources("deblock", 1, 64, clips=("bikes.mp4",), stills=())
    rows = run_grid("deblock", cells, srcs, {"identity": centre}, classical=False, log=lambda s: None)
    deblock = {t: ok for t, ok, _ in targets("deblock", rows, "identity")}
    assert deblock["clean >= 40 dB"] and not deblock["JPEG 20 >= input + 1 dB"]  # handing JPEG back gains nothing
    assert not any("Gaussian" in t for t in deblock)
    denoise = {t for t, _, _ in targets("denoise", denoise_rows, "identity")}
    assert not any("JPEG" in t or "H.264" in t for t in denoise)


def test_tuned_ffmpeg_baseline_beats_noisy_input(denoise_rows):
    row = next(r for r in denoise_rows if r.cell == "Gaussian sigma 10")
    assert row.classical.psnr > row.input.psnr + 2, row.classical


def test_held_out_sources_are_nothing_the_networks_train_on():
    assert not set(HELDOUT_STILLS) & set(STILLS) and not set(HELDOUT_CLIPS) & set(TRAIN_CLIPS)
    assert set(GRID_STILLS) <= set(STILLS)  # why the development grid alone can flatter a fitted network
    srcs = held_out_sources("sr4", 1, 256)
    assert [s.name for s in srcs] == [c.removesuffix(".mp4") for c in HELDOUT_CLIPS] + list(HELDOUT_STILLS)
    for src in srcs:
        assert src.windows.dtype == np.uint8 and src.windows.shape[:2] == (1, 5) and src.windows.shape[-1] == 3
    text = next(s for s in srcs if s.name == "text").windows  # 172 px tall: never magnified, so a smaller crop
    assert text.shape[2:4] == (144, 144) and np.array_equal(text[..., 0], text[..., 2])  # grey replicated to RGB


def test_card_keeps_one_section_per_source_set(tmp_path):
    card = tmp_path / "task.md"
    card.write_text("# card\n\n## Validation\n\nnumbers\n")
    dev, held = CARD_HEADINGS["development"], CARD_HEADINGS["held-out"]
    update_card(card, f"{dev}\n\nfirst grid")
    update_card(card, f"{held}\n\nheld-out grid")
    update_card(card, f"{dev}\n\nsecond grid\n")  # rerun: replaced in place, the held-out section kept
    assert card.read_text() == (f"# card\n\n## Validation\n\nnumbers\n\n{dev}\n\nsecond grid\n\n"
                                f"{held}\n\nheld-out grid\n")


def test_stripe_bias_sees_column_pattern_only_in_dark_flat_blocks():
    target = np.full((1, 64, 64, 3), 30, np.uint8)
    striped = target.copy()
    striped[:, :, 0::2] += 2
    assert stripe_bias(striped, target) == pytest.approx(2.0)
    noisy = np.clip(target + np.random.default_rng(0).normal(0, 2, target.shape), 0, 255).astype(np.uint8)
    assert stripe_bias(noisy, target) < 0.2
    bright = np.full_like(target, 200)
    assert stripe_bias(bright, bright) is None


def test_run_filters_returns_every_setting_and_scale():
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    outs = ffmpeg_filters.run_filters(frames, ["hqdn3d=4:4:6:6", "null"])
    assert len(outs) == 2 and outs[0].shape == frames.shape
    assert np.array_equal(outs[1], frames)  # gbrp round trip is lossless
    up = ffmpeg_filters.run_filters(frames, list(ffmpeg_filters.upscale_settings(4).values()), scale=4)
    assert all(u.shape == (3, 128, 192, 3) for u in up)
    with pytest.raises(RuntimeError, match="ffmpeg failed"):
        ffmpeg_filters.run_filters(frames, ["nosuchfilter=1"])


@pytest.mark.parametrize("kind", sorted(OVERLAYS))
def test_overlays_hide_the_requested_share(kind):
    masks = OVERLAYS[kind](5, 144, 176, np.random.default_rng(3), coverage=0.05)
    assert masks.shape == (5, 144, 176) and set(np.unique(masks)) == {0, 255}
    assert 0.035 < np.count_nonzero(masks[2]) / masks[2].size < 0.065
    assert np.array_equal(masks[0], masks[4]) == (kind != "moving_object")


def test_inpaint_cells_hide_the_pixels_and_keep_the_clean_target():
    window = sources("inpaint", 1, 64, clips=("bikes.mp4",), stills=())[0].windows[0]
    for cell in grid("inpaint"):
        sample = cell.apply(window, "bikes", 0)
        hidden = np.broadcast_to(sample.masks != 0, sample.window.shape)
        assert (sample.window[hidden] == OVERLAY_VALUE).all()
        assert sample.masks.shape == (*sample.window.shape[:3], 1)
        assert np.array_equal(sample.target, window[len(window) // 2])


def test_scene_cut_cells_splice_another_scene_that_the_guard_sees_as_one():
    import torch

    from training.scene_cut import other_scene
    for src in sources("denoise", 1, 128, clips=("bikes.mp4",), stills=("gravel",)):
        window = src.windows[0]
        cut = scene_cut(window)
        assert np.array_equal(cut[CUT_FRAMES:], window[CUT_FRAMES:]) and not np.array_equal(cut[0], window[0])
        flagged = other_scene(torch.from_numpy(cut).permute(0, 3, 1, 2)[None].float() / 255)[0].tolist()
        assert flagged == [True] * CUT_FRAMES + [False] * (5 - CUT_FRAMES), (src.name, flagged)
        for task in ("denoise", "deblock", "sr4", "deblur"):
            cells = [c for c in grid(task) if c.family == "scene cut"]
            assert cells, task
            for cell in cells:
                sample = cell.apply(window, src.name, 0)
                assert np.array_equal(sample.target, window[2]), (task, cell.name)


def test_crops_find_the_dark_flat_and_textured_areas():
    frame = np.full((120, 160, 3), 200, np.uint8)
    frame[80:, :60] = 20                                              # dark flat corner
    frame[:40, 100:] = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)  # texture
    found = areas(frame)
    y, x = found["dark flat"]
    assert frame[y : y + TILE, x : x + TILE].max() == 20
    y, x = found["textured"]
    assert y < 40 and x + TILE > 100
    pic = picture([Sample(frame[None], frame)], {"input": frame[None], "ours": frame[None]})
    assert pic.ndim == 3 and pic.shape[1] == 3 * TILE * 4  # clean, input, ours


def test_stripe_probe_is_issue_17s_demo_frame_and_counts_in_the_target(denoise_rows):
    cell, src = probe("denoise")
    assert src.windows.shape == (1, 5, 272, 640, 3)
    assert np.array_equal(src.windows[0, 2], load_clip("bikes.mp4")[PROBE_FRAME])

    def striped(windows, masks):  # the clean frame with a 1-level column pattern: PSNR high, stripes visible
        out = src.windows[:, 2].astype(np.int16)
        out[..., 0::2, :] += 1
        return np.clip(out, 0, 255).astype(np.uint8)

    row = run_row("denoise", cell, src, {"striped": striped}, classical=False)[0]
    assert row.ours["striped"].psnr > 50 and row.ours["striped"].stripe == pytest.approx(1.0, abs=0.05)
    rows = [replace(r, ours={**r.ours, "striped": r.ours["identity"]}) for r in denoise_rows]
    stripe = {t: ok for t, ok, _ in targets("denoise", rows, "striped", row)}["stripe bias < 0.5 grey level"]
    assert not stripe
