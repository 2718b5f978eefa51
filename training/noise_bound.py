"""Do no harm on clean and lightly noisy footage: a denoiser's change to each pixel is bounded by the
noise and blocking it can see in the frame.

A blind video denoiser fuses aligned neighbours; where alignment is imperfect (real motion, aliased
detail) it also removes detail, which on clean input is pure harm (the shipped denoise network took
clean windows of bigbuckbunny to 39.4 dB and lightly noisy ones, sigma 2, 3.1 dB below their input;
robustness grid, 2026-12-06). Removing noise of standard deviation sigma needs changes of about
sigma, rarely beyond 3 sigma. So the residual (output - input) is soft-clipped to
`k * s * (1 + (s / KNEE)^2)`: about k s for light degradation, and no bound at all in practice for
heavy noise (s >> KNEE), where the network's full change is wanted.

s is the larger of the noise level and twice the blocking level:
- noise: Immerkaer's estimator ("Fast noise variance estimation", CVIU 1996), the mean absolute
  response of a 3x3 Laplacian-difference kernel, which cancels smooth image structure, times
  sqrt(pi/2) / 6, over the pixels off edges (Sobel gradient at most the mean). It reads fine
  texture as noise too, which only loosens the bound where detail is.
- blocking: how much larger the steps between neighbouring pixels are across the 8x8 grid of
  JPEG/MPEG blocks (from the frame's top-left corner, where codecs put it) than anywhere. Block
  artifacts hide from the noise estimate (compression removes fine noise), yet removing them
  takes changes of their size: without this term the bound cost JPEG 10-40 0.3-0.8 dB.
A few convolutions, slices and means per window: it stays in the exported graph (FP32 in
TensorRT plans).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.flow import grey

KNEE = 6 / 255  # s (in [0, 1] units) above which the bound quickly stops binding
BLOCK = 8        # the block grid of JPEG and of MPEG-2/4's transforms
BLOCK_WEIGHT = 2.0  # blocking of b grey levels counts as noise of BLOCK_WEIGHT * b
# Immerkaer's kernel: the difference of two Laplacians, zero on planes and nearly so on edges.
_KERNEL = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
_SCALE = math.sqrt(math.pi / 2) / 6
_SOBEL = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))


def estimate_noise_sigma(frame: torch.Tensor) -> torch.Tensor:
    """frame: float (N, C, H, W) in [0, 1], H and W >= 3 -> (N, 1, 1, 1): the noise standard
    deviation (same units), averaged over the channels. Pixels whose Sobel gradient is above the
    channel's mean gradient (edges, where the kernel responds to structure too) are left out:
    on the grid's clips that tightened the bound where it mattered (clean bigbuckbunny 42.4 ->
    44.6 dB) and changes nothing on noise alone (the two filters' responses to it are unrelated)."""
    n, c, h, w = frame.shape
    flat = frame.reshape(n * c, 1, h, w)
    # One convolution with the three filters: ONNX Runtime pads a one-filter convolution's output
    # to its channel block, so three of them cost three times one (640x360: 12-13 ms -> 6 ms).
    sobel = torch.tensor(_SOBEL, dtype=frame.dtype, device=frame.device)
    filters = torch.stack([torch.tensor(_KERNEL, dtype=frame.dtype, device=frame.device), sobel, sobel.t()])
    responses = F.conv2d(flat, filters.unsqueeze(1)).abs()
    response, gradient = responses[:, :1], responses[:, 1:2] + responses[:, 2:]
    keep = (gradient <= gradient.mean(dim=(1, 2, 3), keepdim=True)).to(frame.dtype)
    mean = (response * keep).sum(dim=(1, 2, 3)) / keep.sum(dim=(1, 2, 3)).clamp_min(1)
    return (mean.reshape(n, c).mean(dim=1) * _SCALE).view(n, 1, 1, 1)


def estimate_blockiness(frame: torch.Tensor) -> torch.Tensor:
    """frame: float (N, 3, H, W) in [0, 1] -> (N, 1, 1, 1): mean |step| between neighbouring grey
    pixels across the BLOCK grid minus the mean |step| everywhere, averaged over both directions,
    0 where the grid shows no more steps than the rest (no block artifacts, or none aligned)."""
    g = grey(frame)
    dx = (g[..., 1:] - g[..., :-1]).abs()
    dy = (g[..., 1:, :] - g[..., :-1, :]).abs()
    across_x = dx[..., BLOCK - 1::BLOCK].mean(dim=(1, 2, 3)) - dx.mean(dim=(1, 2, 3))
    across_y = dy[..., BLOCK - 1::BLOCK, :].mean(dim=(1, 2, 3)) - dy.mean(dim=(1, 2, 3))
    return (0.5 * (across_x + across_y)).clamp_min(0).view(-1, 1, 1, 1)


def level(frame: torch.Tensor) -> torch.Tensor:
    """What the bound scales with: (N, 3, H, W) -> (N, 1, 1, 1), the larger of the noise level and
    BLOCK_WEIGHT times the blocking."""
    return torch.maximum(estimate_noise_sigma(frame), BLOCK_WEIGHT * estimate_blockiness(frame))


class NoiseBound(nn.Module):
    """Soft-clip a restored frame's change from its input to what the input's noise and blocking allow."""

    def __init__(self, k: float) -> None:
        super().__init__()
        if k <= 0:
            raise ValueError(f"NoiseBound: k must be > 0, got {k}")
        self.k = k

    def forward(self, centre: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """centre, restored: float (N, 3, H, W) in about [0, 1] (the input's centre frame and the
        network's output; H, W >= BLOCK) -> (N, 3, H, W): centre + b * tanh((restored - centre) / b),
        where b = k * s * (1 + (s / KNEE)^2) per window, s the larger of the noise level and
        BLOCK_WEIGHT times the blocking (never 0: a floor of 1e-4)."""
        s = level(centre)
        bound = (self.k * s * (1 + (s / KNEE) ** 2)).clamp_min(1e-4)
        return centre + bound * torch.tanh((restored - centre) / bound)
