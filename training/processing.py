"""The one pre/post-processing definition: uint8 wire tensors <-> the network's float tensors.

Used by training (evaluation on uint8 frames), by export (these modules are traced into the
ONNX graph, so conversion and normalisation run inside it; the network pads what its body needs)
and by in-process baselines.
"""
from __future__ import annotations

import torch
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
        if not cfg.masked:
            extra = {}
            if cfg.deconvolved:
                if second is None:
                    raise ValueError("deconvolved network needs the blur kernel (N, k, k)")
                extra["kernel"] = second
            return network_to_frame(self.net(frames, **extra))
        if second is None:
            raise ValueError("inpainting network needs the mask window (N, T, H, W, 1)")
        # 1 from grey level 128 on, 0 up to 127 (the > 0.5 threshold on integers): a clamp, not a
        # comparison and a cast, because this runs on all 21 frames of inpaint's window.
        masks = (second.float().permute(0, 1, 4, 2, 3) - 127.0).clamp(0.0, 1.0)
        y = self.net(frames, masks)
        # Outside the mask the centre frame comes back bit-exact (k / 255 * 255 rounds back to k).
        centre = cfg.input_frames // 2
        y = torch.where(masks[:, centre] > 0, y, frames[:, centre])
        return network_to_frame(y)
