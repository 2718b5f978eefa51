"""Device-side ring buffer of one stream's last T frames, for the GPU window model (issue 4
item 3: frames cross PCIe once).

Each frame is copied to the GPU once, into a slot of a preallocated (T, H, W, C) tensor; a
window is gathered from the slots in one index_select into a *new* tensor (never a view of the
ring: the next frame overwrites a slot while Triton may still be reading the emitted window),
which the window model hands to Triton with DLPack, so the TensorRT plan reads it without a
host round trip. Which stream frames form a window (mirrored edges) stays in windowing.py; this
class only maps stream indices to slots.

Pure torch, any device: tests run it on CPU. It belongs beside windowing.py in
model_repository/<task>_window/1/ (the server cannot import the export package).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


class DeviceRing:
    """The last `window` frames of a stream, frame i in slot i % window."""

    def __init__(self, window: int, frame_shape: Sequence[int], dtype: torch.dtype = torch.uint8,
                 device: torch.device | str = "cuda") -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.slots = torch.empty((window, *frame_shape), dtype=dtype, device=device)
        self.received = 0

    def push(self, frame: torch.Tensor) -> int:
        """Copy `frame` (any device; pinned host memory makes the copy asynchronous) into the next
        slot; return its stream index. A shape or dtype change is a ValueError naming both."""
        if frame.shape != self.slots.shape[1:] or frame.dtype != self.slots.dtype:
            raise ValueError(f"frame {self.received} is {frame.dtype} {list(frame.shape)}, but this "
                             f"stream's frames are {self.slots.dtype} {list(self.slots.shape[1:])}")
        self.slots[self.received % self.window].copy_(frame, non_blocking=True)
        self.received += 1
        return self.received - 1

    def gather(self, indices: Sequence[int]) -> torch.Tensor:
        """New (1, len(indices), *frame_shape) tensor of stream frames `indices`, which must be
        among the last `window` received (windowing.window_indices guarantees it)."""
        oldest = self.received - min(self.received, self.window)
        stale = [i for i in indices if not oldest <= i < self.received]
        if stale:
            raise IndexError(f"frames {stale} are not in the ring (it holds {oldest}..{self.received - 1})")
        slots = torch.tensor([i % self.window for i in indices], device=self.slots.device)
        return self.slots.index_select(0, slots).unsqueeze(0)
