"""Tiles for frames larger than the server's network accepts (its `max_side`): overlapping tiles
are restored as separate streams (one sequence and connection each, all to the same server, so
every tile keeps its own temporal window) and blended back with linear ramps across each
overlap, so there are no seams."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import tritonclient.grpc as grpcclient

from .server import Endpoint, TaskInfo
from .stream import FrameIn, restore_stream


@dataclass(frozen=True)
class Tile:
    """Input rows y0:y1 and columns x0:x1 of the frame."""

    y0: int
    y1: int
    x0: int
    x1: int

    def crop(self, frame: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(frame[self.y0 : self.y1, self.x0 : self.x1])


def _spans(length: int, max_len: int, overlap: int) -> list[tuple[int, int]]:
    if length <= max_len:
        return [(0, length)]
    count = -(-(length - overlap) // (max_len - overlap))  # ceil: tiles needed along this axis
    step = (length - max_len) / (count - 1)
    return [(round(i * step), round(i * step) + max_len) for i in range(count)]


def plan_tiles(height: int, width: int, max_side: int, overlap: int = 32) -> list[Tile]:
    """Overlapping tiles of at most max_side x max_side covering the frame (one if it fits)."""
    if max_side <= 2 * overlap:
        raise ValueError(f"max_side {max_side} must exceed twice the overlap {overlap}")
    return [Tile(y0, y1, x0, x1) for y0, y1 in _spans(height, max_side, overlap)
            for x0, x1 in _spans(width, max_side, overlap)]


def _ramp(start: int, end: int, lo_neighbour: int | None, hi_neighbour: int | None) -> np.ndarray:
    """Weights along one axis of a tile: 1 inside, rising/falling linearly over the parts shared
    with the previous/next tile (whose extents are given), so neighbouring weights sum to 1."""
    w = np.ones(end - start, np.float32)
    if lo_neighbour is not None and lo_neighbour > start:  # shared with the previous tile
        n = lo_neighbour - start
        w[:n] = (np.arange(n, dtype=np.float32) + 0.5) / n
    if hi_neighbour is not None and hi_neighbour < end:  # shared with the next tile
        n = end - hi_neighbour
        w[-n:] = np.minimum(w[-n:], (np.arange(n, 0, -1, dtype=np.float32) - 0.5) / n)
    return w


class Stitcher:
    """Accumulates restored tiles (scaled by `scale`) into one frame with feathered overlaps."""

    def __init__(self, height: int, width: int, scale: int, tiles: list[Tile]) -> None:
        self.scale, self.tiles = scale, tiles
        self.sum = np.zeros((height * scale, width * scale, 3), np.float32)
        self.weight = np.zeros((height * scale, width * scale, 1), np.float32)
        ys = sorted({(t.y0, t.y1) for t in tiles})
        xs = sorted({(t.x0, t.x1) for t in tiles})
        self._wy = {span: self._axis_weights(span, ys) for span in ys}
        self._wx = {span: self._axis_weights(span, xs) for span in xs}

    def _axis_weights(self, span: tuple[int, int], spans: list[tuple[int, int]]) -> np.ndarray:
        i = spans.index(span)
        prev_end = spans[i - 1][1] if i > 0 else None
        next_start = spans[i + 1][0] if i + 1 < len(spans) else None
        s = self.scale
        return _ramp(span[0] * s, span[1] * s, None if prev_end is None else prev_end * s,
                     None if next_start is None else next_start * s)

    def add(self, tile: Tile, restored: np.ndarray) -> None:
        s = self.scale
        expected = ((tile.y1 - tile.y0) * s, (tile.x1 - tile.x0) * s, 3)
        if restored.shape != expected:
            raise ValueError(f"restored tile {tile} has shape {restored.shape}, expected {expected}")
        w = self._wy[(tile.y0, tile.y1)][:, None, None] * self._wx[(tile.x0, tile.x1)][None, :, None]
        region = (slice(tile.y0 * s, tile.y1 * s), slice(tile.x0 * s, tile.x1 * s))
        self.sum[region] += restored.astype(np.float32) * w
        self.weight[region] += w

    def result(self) -> np.ndarray:
        if not np.all(self.weight > 0):
            raise ValueError("not every pixel is covered by a restored tile")
        return np.clip(np.rint(self.sum / self.weight), 0, 255).astype(np.uint8)


def restore_frames(client: grpcclient.InferenceServerClient, url: Endpoint, task: TaskInfo,
                   frames: Iterable[FrameIn], size: tuple[int, int], overlap: int = 32,
                   **stream_args: Any) -> Iterator[tuple[int, np.ndarray]]:
    """restore_stream, tiled when a side of `size` (H, W) exceeds the task's max_side."""
    height, width = size
    if not task.max_side or max(height, width) <= task.max_side:
        yield from restore_stream(client, url, task, frames, **stream_args)
        return
    tiles = plan_tiles(height, width, task.max_side, overlap)
    copies = itertools.tee(frames, len(tiles))  # buffers only what the slowest tile has not sent
    clients = [client] + [url.client() for _ in tiles[1:]]

    def cropped(tile: Tile, source: Iterable[FrameIn]) -> Iterator[FrameIn]:
        for index, rgb, mask in source:
            yield index, tile.crop(rgb), None if mask is None else tile.crop(mask)

    streams = [restore_stream(c, url, task, cropped(t, s), **stream_args) for c, t, s in zip(clients, tiles, copies)]
    try:
        for parts in zip(*streams):
            scale = parts[0][1].shape[0] // (tiles[0].y1 - tiles[0].y0)
            stitcher = Stitcher(height, width, scale, tiles)
            for tile, (_, restored) in zip(tiles, parts):
                stitcher.add(tile, restored)
            yield parts[0][0], stitcher.result()
    finally:
        for stream in streams:
            stream.close()
        for extra in clients[1:]:
            extra.close()
