"""Sliding windows over a stream of frames: the pure logic behind every `<task>_window` model.

A stream is fed one frame at a time. Once frame t + T//2 has arrived, the window centred on
frame t is complete and is emitted; at the end of the stream the remaining windows are emitted.
Frames outside the stream are mirrored about its ends, as FastDVDnet does: frame -1 := frame 1,
frame n := frame n-2. Only the last T frames are kept, so memory per stream is bounded.

Frames may be NumPy arrays (CPU) or torch CUDA tensors (GPU hosts: the ring buffer then lives
on the GPU and a frame crosses PCIe once); `stack` is np.stack or torch.stack accordingly.

No Triton imports: model.py adapts this to the Python backend, and tests use it directly.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def mirror_index(i: int, length: int) -> int:
    """Reflect index `i` into [0, length) about the stream's first and last frames."""
    if length < 1:
        raise ValueError(f"a stream has at least one frame, got length {length}")
    if length == 1:
        return 0
    period = 2 * (length - 1)
    i = abs(i) % period
    return period - i if i >= length else i


def window_indices(centre: int, window: int, length: int) -> list[int]:
    """Stream indices of the `window` frames centred on `centre` in a stream of `length` frames."""
    half = window // 2
    return [mirror_index(i, length) for i in range(centre - half, centre + half + 1)]


class StreamError(ValueError):
    """A request that does not fit its stream (wrong shape, frame size changed, ...)."""


@dataclass
class Window:
    """The window centred on stream frame `index`: one array (T, ...) per plane (frames, masks)."""

    index: int
    planes: tuple[Any, ...]


@dataclass
class StreamWindower:
    """Per-stream ring buffer of the last T frames; each frame is a tuple of planes
    (the RGB frame, and for inpainting its mask) that are windowed together."""

    window: int
    stack: Callable[[Sequence[Any]], Any] = np.stack
    received: int = 0
    emitted: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    _shapes: tuple[tuple[int, ...], ...] | None = None
    _ring: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window length must be odd and >= 1, got {self.window}")

    def push(self, *planes: Any) -> list[Window]:
        """Add the next frame; return the windows it completes (none until frame T//2)."""
        shapes = tuple(tuple(p.shape) for p in planes)
        if self._shapes is None:
            self._shapes = shapes
        elif shapes != self._shapes:
            raise StreamError(
                f"frame {self.received} has shape {list(map(list, shapes))}, but this stream "
                f"started with {list(map(list, self._shapes))}: frame size cannot change mid-stream"
            )
        self._ring.append(planes)
        if len(self._ring) > self.window:
            self._ring.popleft()
        self.received += 1
        self.last_seen = time.monotonic()
        half = self.window // 2
        if self.received - 1 - half >= 0:
            return [self._emit(self.received - 1 - half, length=None)]
        return []

    def finish(self) -> list[Window]:
        """The stream has ended: return every window not yet emitted."""
        return [self._emit(t, length=self.received) for t in range(self.emitted, self.received)]

    def _emit(self, centre: int, length: int | None) -> Window:
        # While streaming the length is unknown, but only the left edge can need mirroring then,
        # and mirroring about frame 0 does not depend on the length.
        indices = window_indices(centre, self.window, length or self.received)
        first = self.received - len(self._ring)
        frames = [self._ring[i - first] for i in indices]
        planes = tuple(self.stack([f[p] for f in frames]) for p in range(len(frames[0])))
        self.emitted = centre + 1
        return Window(centre, planes)


class StreamTable:
    """All live streams of one window model, keyed by sequence (correlation) id."""

    def __init__(self, window: int, idle_timeout_s: float, stack: Callable[[Sequence[Any]], Any] = np.stack) -> None:
        self.window = window
        self.idle_timeout_s = idle_timeout_s
        self.stack = stack
        self.streams: dict[int, StreamWindower] = {}

    def handle(self, corrid: int, start: bool, end: bool, planes: tuple[Any, ...]) -> list[Window]:
        """Feed one frame of sequence `corrid`; return the windows to emit, in order.
        A StreamError ends the stream (its state is dropped) and names the frame at fault."""
        if start:
            self.streams[corrid] = StreamWindower(self.window, self.stack)
        stream = self.streams.get(corrid)
        if stream is None:
            raise StreamError(
                f"sequence {corrid} is unknown here (never started, failed earlier, or reaped after "
                f"{self.idle_timeout_s:g} s idle): start it again with sequence_start"
            )
        try:
            windows = stream.push(*planes)
            if end:
                windows += stream.finish()
        except StreamError:
            del self.streams[corrid]
            raise
        if end:
            del self.streams[corrid]
        return windows

    def reap(self, now: float | None = None) -> list[int]:
        """Drop streams idle for longer than the timeout (clients that died mid-stream)."""
        now = time.monotonic() if now is None else now
        dead = [c for c, s in self.streams.items() if now - s.last_seen > self.idle_timeout_s]
        for corrid in dead:
            del self.streams[corrid]
        return dead
