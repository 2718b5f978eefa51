"""The one pre/post-processing definition: uint8 wire tensors <-> the network's float tensors.

Used by training (evaluation on uint8 frames), by export (these modules are traced into the
ONNX graph, so conversion, normalisation and padding run inside it) and by in-process baselines.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.contract import VALUE_MAX
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


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the last two dims of (N, T, C, H, W) up to a multiple of `multiple`."""
    if multiple == 1:
        return x
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    n, t, c = x.shape[:3]
    flat = F.pad(x.reshape(n, t * c, h, w), (0, pad_w, 0, pad_h), mode="replicate")
    return flat.reshape(n, t, c, h + pad_h, w + pad_w)


class ServingNet(nn.Module):
    """The network with uint8 edges, as exported to ONNX and served."""

    def __init__(self, net: VideoRestorationNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, window: torch.Tensor, second: torch.Tensor | None = None) -> torch.Tensor:
        """window: uint8 (N, T, H, W, 3) RGB. second, as the network's config asks: inpaint's mask
        window uint8 (N, T, H, W, 1), 255 = fill, or deblur's blur kernel float32 (N, k, k)
        (training/blur_kernel.py). Returns uint8 (N, H*s, W*s, 3) RGB, the
        restored centre frame."""
        cfg = self.net.config
        frames = window_to_network(window)
        h, w = frames.shape[-2:]
        if not cfg.masked:
            extra = {}
            if cfg.deconvolved:
                if second is None:
                    raise ValueError("deconvolved network needs the blur kernel (N, k, k)")
                extra["kernel"] = second
            y = self.net(pad_to_multiple(frames, cfg.multiple), **extra)
            return network_to_frame(y[:, :, : h * cfg.scale, : w * cfg.scale])
        if second is None:
            raise ValueError("inpainting network needs the mask window (N, T, H, W, 1)")
        masks = (window_to_network(second) > 0.5).float()
        y = self.net(pad_to_multiple(frames, cfg.multiple), pad_to_multiple(masks, cfg.multiple))[:, :, :h, :w]
        # Outside the mask the centre frame comes back bit-exact (k / 255 * 255 rounds back to k).
        centre = cfg.frames // 2
        y = torch.where(masks[:, centre] > 0, y, frames[:, centre])
        return network_to_frame(y)
