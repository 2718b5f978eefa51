"""Bicubic upsampling by an integer factor as a depthwise convolution and a pixel shuffle.

The same numbers as torch's `F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)`
(Keys' cubic convolution, a = -0.75, borders replicated), built from Pad, Conv and DepthToSpace:
the ONNX operators TensorRT 10 parses, whose Resize takes nearest and linear modes only
(export/tensorrt_ops.py). sr4 adds its residual to this upsample of the centre frame.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CUBIC_A = -0.75  # torch's (and OpenCV's) bicubic coefficient


def cubic_weight(d: float, a: float = CUBIC_A) -> float:
    """Keys' cubic convolution kernel at distance d (pixels)."""
    d = abs(d)
    if d <= 1:
        return (a + 2) * d**3 - (a + 3) * d**2 + 1
    if d < 2:
        return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
    return 0.0


def phase_taps(scale: int) -> torch.Tensor:
    """(scale, 5) weights: output phase r of input pixel i reads input pixels i-2..i+2 with these.
    Output pixel scale*i + r sits at input coordinate i + (2r + 1 - scale) / (2 scale)."""
    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for r in range(scale):
        x = (2 * r + 1 - scale) / (2 * scale)
        base = math.floor(x)
        for p in range(base - 1, base + 3):
            taps[r, p + 2] = cubic_weight(x - p)
    return taps


class CubicUpsample(nn.Module):
    """x (N, C, H, W) -> (N, C, scale H, scale W), bicubic; no learned weights."""

    def __init__(self, scale: int, channels: int = 3) -> None:
        super().__init__()
        taps = phase_taps(scale)
        # Phase (ry, rx) of channel c is output channel c * scale^2 + ry * scale + rx (PixelShuffle's order).
        kernel = torch.einsum("yi,xj->yxij", taps, taps).reshape(scale * scale, 1, 5, 5)
        self.register_buffer("kernel", kernel.repeat(channels, 1, 1, 1).float(), persistent=False)
        self.scale, self.channels = scale, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, channels, H, W), any range -> (N, channels, scale H, scale W)."""
        y = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.kernel, groups=self.channels)
        return F.pixel_shuffle(y, self.scale)
