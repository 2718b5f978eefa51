"""Tiling of frames larger than the network's max_side: coverage, overlap, seamless blending."""
from __future__ import annotations

import numpy as np
import pytest

from client.tiling import Stitcher, plan_tiles


@pytest.mark.parametrize("h,w,max_side", [(100, 100, 200), (300, 500, 128), (129, 1000, 128), (2160, 3840, 1024)])
def test_tiles_cover_the_frame_within_max_side_and_overlap(h, w, max_side):
    tiles = plan_tiles(h, w, max_side, overlap=32)
    covered = np.zeros((h, w), bool)
    for t in tiles:
        assert 0 <= t.y0 < t.y1 <= h and 0 <= t.x0 < t.x1 <= w
        assert t.y1 - t.y0 <= max_side and t.x1 - t.x0 <= max_side
        covered[t.y0:t.y1, t.x0:t.x1] = True
    assert covered.all()
    if h <= max_side and w <= max_side:
        assert len(tiles) == 1
    ys = sorted({(t.y0, t.y1) for t in tiles})
    assert all(b[0] <= a[1] - 32 for a, b in zip(ys, ys[1:])), "neighbours overlap by >= 32 px"


@pytest.mark.parametrize("scale", [1, 4])
def test_stitching_identity_tiles_gives_back_the_frame_exactly(scale):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (90, 150, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(frame, scale, 0), scale, 1)
    tiles = plan_tiles(90, 150, 64, overlap=16)
    stitcher = Stitcher(90, 150, scale, tiles)
    for t in tiles:
        stitcher.add(t, big[t.y0 * scale:t.y1 * scale, t.x0 * scale:t.x1 * scale])
    np.testing.assert_array_equal(stitcher.result(), big)


def test_blending_hides_a_per_tile_offset():
    # Tiles that disagree slightly (as a network near its borders does) blend without a step.
    frame = np.full((64, 200, 3), 100, np.uint8)
    tiles = plan_tiles(64, 200, 96, overlap=32)
    stitcher = Stitcher(64, 200, 1, tiles)
    for i, t in enumerate(tiles):
        stitcher.add(t, t.crop(frame) + np.uint8(4 * (i % 2)))
    row = stitcher.result()[32, :, 0].astype(int)
    assert np.abs(np.diff(row)).max() <= 1


def test_missing_tile_and_wrong_shape_are_errors():
    tiles = plan_tiles(50, 300, 128, overlap=16)
    stitcher = Stitcher(50, 300, 1, tiles)
    with pytest.raises(ValueError, match="expected"):
        stitcher.add(tiles[0], np.zeros((5, 5, 3), np.uint8))
    stitcher.add(tiles[0], np.zeros((50, tiles[0].x1, 3), np.uint8))
    with pytest.raises(ValueError, match="not every pixel"):
        stitcher.result()
