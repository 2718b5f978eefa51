"""The one pre/post-processing definition: uint8 wire tensors <-> the network's float tensors.

Used by training (evaluation on uint8 frames), by export (these modules are traced into the
ONNX graph, so conversion and normalisation run inside it; the network pads what its body needs)
and by in-process baselines.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.contract import MASK_FILL_FROM, VALUE_MAX
from training.network import VideoRestorationNet


# The casts come first on the way in and last on the way out, so that uint8 exists only at the
# exported graph's edges (TensorRT takes UINT8 only as network input or output; the exporter's
# own Shape reads of the inputs are re-routed by export/uint8_edges.py).


def window_to_network(window: torch.Tensor) -> torch.Tensor:
    """uint8 (N, T, H, W, C) channels-last -> float (N, T, C, H, W) in [0, 1]."""
    return window.float().permute(0, 1, 4, 2, 3) / VALUE_MAX


def network_to_frame(frame: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W), about [0, 1] -> uint8 (N, H, W, 3): clamp, round, channels-last."""
    return (frame.clamp(0.0, 1.0) * VALUE_MAX).round().permute(0, 2, 3, 1).to(torch.uint8)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """uint8 masks (..., H, W, 1), fill from grey level MASK_FILL_FROM on -> the wire's MASK_WINDOW
    layout (..., H, ceil(W/8), 1): one bit per pixel along W, most significant first, 1 = fill.
    The window model packs each mask as it arrives (model_repository/*_window/1/windowing.py)."""
    return np.packbits(masks[..., 0] >= MASK_FILL_FROM, axis=-1)[..., None]


def unpack_masks(packed: torch.Tensor, width: int) -> torch.Tensor:
    """`pack_masks`'s uint8 (N, T, H, ceil(W/8), 1) -> float (N, T, 1, H, W) in {0, 1}.

    Bits come out of floor divisions in float (x >> k = floor(x / 2^k), bit k = (x >> k) - 2 (x >> k+1)),
    not bitwise operators: TensorRT's ONNX parser takes no BitShift or BitwiseAnd, and uint8 only
    at the graph's edges (export/uint8_edges.py)."""
    x = packed.float().permute(0, 1, 4, 2, 3).unsqueeze(-1)          # (N, T, 1, H, W/8, 1)
    shifted = torch.floor(x / 2.0 ** torch.arange(8, -1, -1, dtype=x.dtype, device=x.device))  # x >> 8 .. x >> 0
    bits = shifted[..., 1:] - 2 * shifted[..., :-1]                  # bit 7 (first pixel) .. bit 0
    return bits.flatten(-2)[..., :width]


class ServingNet(nn.Module):
    """The network with uint8 edges, as exported to ONNX and served."""

    def __init__(self, net: VideoRestorationNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, window: torch.Tensor, second: torch.Tensor | None = None) -> torch.Tensor:
        """window: uint8 (N, T, H, W, 3) RGB. second, as the network's config asks: inpaint's mask
        window uint8 (N, T, H, ceil(W/8), 1) bit-packed (`pack_masks`), or deblur's blur kernel float32 (N, k, k)
        (training/blur_kernel.py). Returns uint8 (N, H*s, W*s, 3) RGB, the
        restored centre frame."""
        cfg = self.net.config
        frames = window_to_network(window)
        if not cfg.masked:
            extra = {}
            if cfg.deconvolved:
                if second is None:
                    raise ValueError("deconvolved network needs the blur kernel (N, k, k)")
                extra["kernel"] = second
            return network_to_frame(self.net(frames, **extra))
        if second is None:
            raise ValueError("inpainting network needs the bit-packed mask window (N, T, H, ceil(W/8), 1)")
        masks = unpack_masks(second, frames.shape[-1])
        y = self.net(frames, masks)
        # Outside the mask the centre frame comes back bit-exact (k / 255 * 255 rounds back to k).
        centre = cfg.input_frames // 2
        y = torch.where(masks[:, centre] > 0, y, frames[:, centre])
        return network_to_frame(y)
