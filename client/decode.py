"""Decoding any input FFmpeg reads (a video file, or an image-sequence pattern such as
frames/%05d.png) into RGB uint8 HxWx3 frames with their timestamps, plus the facts the encoder
needs to write a faithful output (rate, time base, colour, frame count)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator

import av
import numpy as np

from .colour import Colour, frame_to_rgb
from .errors import RestoreError

_PATTERN = re.compile(r"%0?\d*d")


def is_pattern(path: str) -> bool:
    """Whether `path` is an image-sequence pattern such as frames/%05d.png."""
    return bool(_PATTERN.search(os.path.basename(path)))


def first_number(pattern: str) -> int:
    """The number of an image sequence's first file: the first of 0..4 that exists, as FFmpeg's
    image2 reader looks for it (its start_number_range), else 1."""
    return next((n for n in range(5) if os.path.exists(pattern % n)), 1)


@dataclass(frozen=True)
class SourceInfo:
    """What the encoder must reproduce, read once from the input's video stream."""

    width: int
    height: int
    frame_count: int | None  # from the container; None when it does not say
    time_base: Fraction
    rate: Fraction           # average frame rate (25 for image sequences, as FFmpeg assumes)
    colour: Colour
    duration_s: float | None  # announced length of the video stream (or of the file)
    bits: int = 8             # bits per colour component of the stored pixels

    @property
    def frames_estimate(self) -> int | None:
        """The frame count, or failing that the announced duration times the rate (for the ETA)."""
        if self.frame_count or self.duration_s is None:
            return self.frame_count
        return round(self.duration_s * self.rate)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its 0-based index in the stream, timestamp and RGB pixels."""

    index: int
    pts: int
    rgb: np.ndarray


def open_input(path: str) -> av.container.InputContainer:
    """Open a video file or image-sequence pattern; a one-line RestoreError if it cannot be read."""
    if is_pattern(path):
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            raise RestoreError(f"input folder '{folder}' does not exist")
        try:
            return av.open(path, format="image2")
        except (av.FFmpegError, OSError) as e:
            raise RestoreError(f"no images match the pattern '{path}' ({e.strerror or e})") from None
    if not os.path.exists(path):
        raise RestoreError(f"input '{path}' does not exist")
    if os.path.isdir(path):
        raise RestoreError(f"input '{path}' is a directory, not a video")
    try:
        return av.open(path)
    except (av.FFmpegError, OSError) as e:
        raise RestoreError(f"'{path}' is not a video FFmpeg can read ({getattr(e, 'strerror', None) or e})") from None


def _bits(pix_fmt: str | None) -> int:
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (TypeError, ValueError):  # no or unknown format: the decoder will say on the first frame
        return 8


class Source:
    """An opened input: `info` describes its video stream, `frames()` decodes it.

    Conversions a user should hear about (10-bit to 8-bit, grey, alpha, a decode that stopped
    early) are reported through `warn`, once each.
    """

    def __init__(self, path: str, warn: Callable[[str], None] = lambda msg: None) -> None:
        self._container = open_input(path)
        self._warn = warn
        if not self._container.streams.video:
            self._container.close()
            raise RestoreError(f"'{path}' has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding must keep up with the server
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        if stream.duration:
            duration_s: float | None = float(stream.duration * stream.time_base)
        else:
            duration_s = self._container.duration / 1e6 if self._container.duration else None
        self.info = SourceInfo(
            width=ctx.width, height=ctx.height, frame_count=stream.frames or None,
            time_base=stream.time_base or 1 / Fraction(rate), rate=Fraction(rate),
            colour=Colour.of(ctx), duration_s=duration_s, bits=_bits(ctx.pix_fmt))
        self._stream = stream

    def frames(self) -> Iterator[Frame]:
        """Every decodable frame in order. A decode error ends the stream with a warning that
        says where it stopped: the frames before it are still restored."""
        index, last_pts = 0, None
        step = max(1, round(1 / (self.info.rate * self.info.time_base)))
        decoded = self._container.decode(self._stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except av.FFmpegError as e:
                self._warn(f"decoding stopped at frame {index} ({e}); restoring the {index} frame(s) before it")
                break
            if index == 0:
                self._describe(frame)
            # Image sequences and raw streams may carry no timestamps: space them by the rate.
            pts = frame.pts if frame.pts is not None else (0 if last_pts is None else last_pts + step)
            last_pts = pts
            yield Frame(index, pts, frame_to_rgb(frame, Colour.of(frame)))
            index += 1
        expected = self.info.frame_count
        if expected and index < expected:
            self._warn(f"input ended at frame {index} of the {expected} its header announces (truncated or corrupt?)")
        elif index and self.info.duration_s is not None:
            # Containers without a frame count still announce a duration to compare with.
            end = float(last_pts * self.info.time_base)
            if self.info.duration_s - end > 0.5:
                self._warn(f"input ended at frame {index} ({end:.2f} s) of a {self.info.duration_s:.2f} s video "
                           f"(truncated or corrupt?)")

    def _describe(self, frame: av.VideoFrame) -> None:
        fmt = frame.format
        bits = max(c.bits for c in fmt.components)
        if bits > 8:
            self._warn(f"{bits}-bit input ({fmt.name}): restored in 8 bits per channel (the network's precision); "
                       f"video outputs are 10-bit unless --pix-fmt says otherwise")
        colour_components = [c for c in fmt.components if not c.is_alpha]
        if len(colour_components) == 1 and not fmt.has_palette:
            self._warn(f"greyscale input ({fmt.name}): restored as RGB")
        if len(colour_components) < len(fmt.components):
            self._warn(f"input has an alpha channel ({fmt.name}): alpha dropped, colour restored")

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
