"""Sliding windows over a stream of frames: the pure logic behind every `<task>_window` model.

A stream is fed one frame at a time. Once frame t + T//2 has arrived, the window centred on
frame t is complete and is emitted; at the end of the stream the remaining windows are emitted.
Frames outside the stream are mirrored about its ends, as FastDVDnet does: frame -1 := frame 1,
frame n := frame n-2. Only the last T frames are kept, so memory per stream is bounded.

Each plane's ring buffer holds 2T frames and every frame is written twice, at slot i % T and
i % T + T, so the last T frames are always one contiguous slice: a window is a view of the
buffer, not a copy. Stream position p lives in slot p % T, mirrored positions too: frame k
(k <= T//2) is also written where position -k sits when it arrives, and at the end of a stream of
at least T frames, position n + j gets frame n - 2 - j just before the window that first needs
it, into the slot of a frame no later window needs. So every window of such a stream is a view,
and a mirrored one costs one frame copy instead of gathering T frames into new memory (whose
fresh pages the kernel zeroes: 370 ms per 1080p frame for inpaint's 21-frame windows). Only
streams shorter than T gather their end windows, into one buffer per stream. A window is valid
until the stream's next frame or next window: send or copy it before (finish() yields its
windows one by one for that reason).

Limits (Limits) are checked before anything of a request is held; a refused request raises
LimitError and leaves every stream as it was.

Frames may be NumPy arrays (CPU) or torch CUDA tensors (GPU hosts: the ring buffer then lives
on the GPU and a frame crosses PCIe once).

No Triton imports: model.py adapts this to the Python backend, and tests use it directly.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

MAX_STREAMS_CEILING = 256  # export/triton_config.py refuses more too
MIB = 2**20
MASK_FILL_FROM = 128  # training/contract.py's: a MASK pixel at this grey level or above is one to fill


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


def pack_mask(mask: Any) -> Any:
    """One uint8 mask (H, W, 1) -> (H, ceil(W/8), 1): one bit per pixel along W, most significant
    first, 1 = fill; the MASK_WINDOW layout, which the network's graph unpacks
    (training/processing.py `pack_masks`/`unpack_masks`). 8x fewer bytes to hold and to copy into
    every window. NumPy, or a torch tensor on its device (GPU hosts)."""
    if isinstance(mask, np.ndarray):
        return np.packbits(mask[..., 0] >= MASK_FILL_FROM, axis=-1)[..., None]
    h, w = mask.shape[:2]
    bits = mask.new_zeros((h, -(-w // 8) * 8))
    bits[:, :w] = mask[..., 0] >= MASK_FILL_FROM
    weights = mask.new_tensor([128, 64, 32, 16, 8, 4, 2, 1])
    return (bits.view(h, -1, 8) * weights).sum(-1).to(mask.dtype)[..., None]


def held_planes(corrid: int, planes: tuple[Any, ...]) -> tuple[Any, ...]:
    """A request's planes as a stream holds them: the frame as it is and, for inpainting, its mask
    (which must be [H, W, 1] at the frame's size) bit-packed by `pack_mask`."""
    if len(planes) == 1:
        return planes
    frame, mask = planes
    if tuple(mask.shape) != (*frame.shape[:2], 1):
        raise StreamError(f"sequence {corrid}: MASK must be [1, H, W, 1] at the FRAME's size "
                          f"[1, {frame.shape[0]}, {frame.shape[1]}, 1], got [1, {', '.join(map(str, mask.shape))}]")
    return frame, pack_mask(mask)


class LimitError(StreamError):
    """A request refused because it would pass a server limit; nothing was held or dropped."""


@dataclass(frozen=True)
class Limits:
    """What one window model holds at most (its config's max_side, max_streams, max_held_mib)."""

    max_side: int = 2160
    max_streams: int = 64
    max_held_bytes: int = 4096 * MIB

    def __post_init__(self) -> None:
        if not 1 <= self.max_streams <= MAX_STREAMS_CEILING:
            raise ValueError(f"max_streams must be in 1..{MAX_STREAMS_CEILING}, got {self.max_streams}")
        if self.max_side < 1 or self.max_held_bytes < 1:
            raise ValueError(f"max_side and max_held_mib must be positive, got {self}")

    def check_sides(self, corrid: int, planes: tuple[Any, ...]) -> None:
        """LimitError when a plane is taller or wider than max_side."""
        for plane in planes:
            if max(plane.shape[:2]) > self.max_side:
                raise LimitError(f"sequence {corrid}: a {plane.shape[1]}x{plane.shape[0]} frame is larger than "
                                 f"this server takes (max_side {self.max_side}): tile or scale it down")


def _empty(plane: Any, count: int) -> Any:
    """An uninitialised (count, *plane.shape) buffer of plane's dtype, on plane's device."""
    if isinstance(plane, np.ndarray):
        return np.empty((count, *plane.shape), plane.dtype)
    return plane.new_empty((count, *plane.shape))  # torch


def _gather(ring: Any, slots: list[int], out: Any) -> Any:
    """ring[slots] written into `out` (NumPy without a temporary; torch through one, which the
    CUDA caching allocator reuses)."""
    if isinstance(ring, np.ndarray):
        return np.take(ring, slots, axis=0, out=out)
    return out.copy_(ring[slots])


def ring_bytes(window: int, planes: tuple[Any, ...]) -> int:
    """Memory a stream of these planes holds: its 2T-frame ring buffer per plane."""
    return 2 * window * sum(int(p.nbytes) for p in planes)


@dataclass
class Window:
    """The window centred on stream frame `index`: one array (T, ...) per plane (frames, masks),
    possibly a view of the stream's ring buffer (valid until its next frame)."""

    index: int
    planes: tuple[Any, ...]


@dataclass
class StreamWindower:
    """Per-stream ring buffers of the last T frames; each frame is a tuple of planes
    (the RGB frame, and for inpainting its mask) that are windowed together."""

    window: int
    received: int = 0
    emitted: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    _shapes: tuple[tuple[int, ...], ...] | None = None
    _rings: tuple[Any, ...] = ()  # per plane (2T, ...): position p at slots p % T and p % T + T
    _slots: list[int] = field(default_factory=list)  # the stream frame each slot holds (-1: none)
    _gathered: tuple[Any, ...] = ()  # per plane (T, ...): where a short stream's windows are gathered

    def __post_init__(self) -> None:
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window length must be odd and >= 1, got {self.window}")
        self._slots = [-1] * self.window

    @property
    def held_bytes(self) -> int:
        return sum(int(r.nbytes) for r in self._rings)

    def push(self, *planes: Any) -> list[Window]:
        """Add the next frame; return the windows it completes (none until frame T//2)."""
        shapes = tuple(tuple(p.shape) for p in planes)
        if self._shapes is None:
            self._shapes = shapes
            self._rings = tuple(_empty(p, 2 * self.window) for p in planes)
        elif shapes != self._shapes:
            raise StreamError(
                f"frame {self.received} has shape {list(map(list, shapes))}, but this stream "
                f"started with {list(map(list, self._shapes))}: frame size cannot change mid-stream"
            )
        half = self.window // 2
        self._write(self.received % self.window, self.received, planes)
        if 0 < self.received <= half:  # frame k is also position -k (mirrored about frame 0)
            self._write(self.window - self.received, self.received, planes)
        self.received += 1
        self.last_seen = time.monotonic()
        if self.received - 1 - half >= 0:
            return [self._emit(self.received - 1 - half, length=None)]
        return []

    def finish(self) -> Iterator[Window]:
        """The stream has ended: yield every window not yet emitted, one at a time (each is a
        view that the next one's mirrored frame may overwrite: use it before taking the next)."""
        n, half = self.received, self.window // 2
        for centre in range(self.emitted, n):
            newest = centre + half
            if n >= self.window and newest >= n:
                # Position newest's slot holds frame newest - T, which no window from here on needs.
                source = self._slots.index(2 * (n - 1) - newest)
                self._write(newest % self.window, self._slots[source], tuple(r[source] for r in self._rings))
            yield self._emit(centre, length=n)

    def _write(self, slot: int, frame: int, planes: tuple[Any, ...]) -> None:
        for ring, plane in zip(self._rings, planes):
            ring[slot] = plane
            ring[slot + self.window] = plane
        self._slots[slot] = frame

    def _emit(self, centre: int, length: int | None) -> Window:
        # While streaming the length is unknown, but only the left edge can need mirroring then,
        # and mirroring about frame 0 does not depend on the length.
        indices = window_indices(centre, self.window, length or self.received)
        first = (centre - self.window // 2) % self.window  # slot of the window's first position
        if all(self._slots[(first + k) % self.window] == f for k, f in enumerate(indices)):
            planes = tuple(r[first:first + self.window] for r in self._rings)
        else:  # a stream shorter than the window, mirrored at both ends: gather (a copy)
            slots = [self._slots.index(f) for f in indices]
            if not self._gathered:  # one buffer for all of them, not fresh memory for each
                self._gathered = tuple(_empty(r[0], self.window) for r in self._rings)
            planes = tuple(_gather(r, slots, out) for r, out in zip(self._rings, self._gathered))
        self.emitted = centre + 1
        return Window(centre, planes)


class StreamTable:
    """All live streams of one window model, keyed by sequence (correlation) id."""

    def __init__(self, window: int, idle_timeout_s: float, limits: Limits = Limits()) -> None:
        self.window = window
        self.idle_timeout_s = idle_timeout_s
        self.limits = limits
        self.streams: dict[int, StreamWindower] = {}

    @property
    def held_bytes(self) -> int:
        return sum(s.held_bytes for s in self.streams.values())

    def handle(self, corrid: int, start: bool, end: bool, planes: tuple[Any, ...]) -> Iterator[Window]:
        """Feed one frame of sequence `corrid`; return the windows to emit, in order (an ended
        stream's last ones are made as they are taken: use each before taking the next).
        A LimitError refuses the frame and changes nothing; any other StreamError ends the
        stream (its state is dropped). Both name the sequence or frame at fault."""
        self.limits.check_sides(corrid, planes)
        if start:
            self._admit(corrid, planes)
            self.streams[corrid] = StreamWindower(self.window)
        stream = self.streams.get(corrid)
        if stream is None:
            raise StreamError(
                f"sequence {corrid} is unknown here (never started, refused, failed earlier, or reaped "
                f"after {self.idle_timeout_s:g} s idle): start it again with sequence_start"
            )
        try:
            windows = stream.push(*planes)
        except StreamError:
            del self.streams[corrid]
            raise
        if end:
            del self.streams[corrid]
            return itertools.chain(windows, stream.finish())
        return iter(windows)

    def _admit(self, corrid: int, planes: tuple[Any, ...]) -> None:
        """LimitError if a new stream starting with `planes` would pass max_streams or
        max_held_bytes (a restarted sequence gives its old stream's memory back)."""
        old = self.streams.get(corrid)
        if old is None and len(self.streams) >= self.limits.max_streams:
            raise LimitError(f"sequence {corrid} refused: {len(self.streams)} streams are live, the most this "
                             f"server holds (max_streams {self.limits.max_streams}); end streams with "
                             f"sequence_end (idle ones are dropped after {self.idle_timeout_s:g} s)")
        need = ring_bytes(self.window, planes)
        held = self.held_bytes - (old.held_bytes if old else 0)
        if held + need > self.limits.max_held_bytes:
            raise LimitError(f"sequence {corrid} refused: its {self.window} frames of "
                             f"{'+'.join(str(list(p.shape)) for p in planes)} need {need / MIB:.1f} MiB and "
                             f"{held / MIB:.1f} MiB are held of {self.limits.max_held_bytes / MIB:.1f} "
                             f"(max_held_mib): try again later or with smaller frames")

    def reap(self, now: float | None = None) -> list[int]:
        """Drop streams idle for longer than the timeout (clients that died mid-stream)."""
        now = time.monotonic() if now is None else now
        dead = [c for c, s in self.streams.items() if now - s.last_seen > self.idle_timeout_s]
        for corrid in dead:
            del self.streams[corrid]
        return dead
