"""Colour facts of a video (matrix, range, primaries, transfer) and the YUV<->RGB conversions that
use them, so that decoding and encoding apply the same matrix and a clean clip passes through
without a colour shift. Values are FFmpeg's AVColor* enums as ints."""
from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import Interpolation


UNSPECIFIED_MATRIX = 2
RGB_MATRIX = 0
BT709, BT601_625, BT601_525, BT2020_NCL, BT2020_CL = 1, 5, 6, 9, 10
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2

# swscale names its matrices with SWS_CS_* numbers, which equal AVColorSpace except for these.
_SWS_MATRIX = {BT601_525: 5, BT2020_CL: 9}
_SWS_KNOWN = {1, 4, 5, 6, 7, 9, 10}
# swscale's defaults skip full chroma interpolation and accurate rounding, which shifts a
# YUV->RGB->YUV round trip by 1-2 levels on average; with both the mean shift is ~0.01 level.
_INTERP = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


@dataclass(frozen=True)
class Colour:
    """The colour tags of a stream as found (any of them may be unspecified)."""

    matrix: int = UNSPECIFIED_MATRIX
    range: int = RANGE_UNSPECIFIED
    primaries: int = 2
    trc: int = 2

    @classmethod
    def of(cls, obj: object) -> "Colour":
        """The tags of a decoded frame or a codec context."""
        return cls(int(obj.colorspace), int(obj.color_range), int(obj.color_primaries), int(obj.color_trc))

    def yuv_matrix(self, height: int) -> int:
        """The YUV matrix to convert with: the tagged one, else what players assume (BT.709 from
        720 lines up, BT.601 below)."""
        if self.matrix in _SWS_KNOWN:
            return self.matrix
        return BT709 if height >= 720 else BT601_525

    def yuv_range(self) -> int:
        """Limited (TV) range unless the stream says full."""
        return RANGE_FULL if self.range == RANGE_FULL else RANGE_LIMITED


def frame_to_rgb(frame: av.VideoFrame, colour: Colour) -> np.ndarray:
    """RGB uint8 HxWx3 of a decoded frame of any pixel format (YUV of any depth, RGB, grey, alpha
    dropped), converted with the stream's own matrix and range."""
    matrix = colour.yuv_matrix(frame.height)
    rgb = frame.reformat(format="rgb24", src_colorspace=_SWS_MATRIX.get(matrix, matrix),
                         src_color_range=colour.yuv_range(), interpolation=_INTERP)
    return rgb.to_ndarray()


def tags(pix_fmt: str, colour: Colour, height: int) -> Colour:
    """The colour facts an output in `pix_fmt` and `height` lines is converted with and tagged
    with: the source's matrix and range made explicit (RGB formats: RGB, full range), and its
    primaries and transfer as found."""
    if av.VideoFormat(pix_fmt).is_rgb:
        return Colour(RGB_MATRIX, RANGE_FULL, colour.primaries, colour.trc)
    return Colour(colour.yuv_matrix(height), colour.yuv_range(), colour.primaries, colour.trc)


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colour: Colour) -> av.VideoFrame:
    """A frame in `pix_fmt` from RGB uint8, converted and tagged as `tags` says."""
    out_tags = tags(pix_fmt, colour, rgb.shape[0])
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    if out_tags.matrix == RGB_MATRIX:
        out = frame.reformat(format=pix_fmt, interpolation=_INTERP)
    else:
        out = frame.reformat(format=pix_fmt, dst_colorspace=_SWS_MATRIX.get(out_tags.matrix, out_tags.matrix),
                             dst_color_range=out_tags.range, interpolation=_INTERP)
    out.colorspace, out.color_range = out_tags.matrix, out_tags.range
    out.color_primaries, out.color_trc = out_tags.primaries, out_tags.trc
    return out
