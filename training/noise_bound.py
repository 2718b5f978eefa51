"""Do no harm on clean and lightly noisy footage: a denoiser's change to each pixel is bounded by the
noise it can see in the frame.

A blind video denoiser fuses aligned neighbours; where alignment is imperfect (real motion, aliased
detail) it also removes detail, which on clean input is pure harm (the shipped denoise network took
clean windows of bigbuckbunny to 40.3 dB and lightly noisy ones, sigma 2, 3.1 dB below their input;
robustness grid, 2026-12-06). Removing noise of standard deviation sigma needs changes of about
sigma, rarely beyond 3 sigma. So the residual (output - input) is soft-clipped to
`k * sigma_hat * (1 + (sigma_hat / KNEE)^2)`: about k sigma for light noise, and no bound at all in
practice for heavy noise (sigma_hat >> KNEE), where the network's full change is wanted.

sigma_hat is Immerkaer's estimator ("Fast noise variance estimation", CVIU 1996): the mean absolute
response of a 3x3 Laplacian-difference kernel, which cancels smooth image structure, times
sqrt(pi/2) / 6. It reads texture as noise too, which only loosens the bound where detail is. One
convolution and one mean per window: it stays in the exported graph (FP32 in TensorRT plans).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KNEE = 6 / 255  # sigma_hat (in [0, 1] units) above which the bound quickly stops binding
# Immerkaer's kernel: the difference of two Laplacians, zero on planes and nearly so on edges.
_KERNEL = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
_SCALE = math.sqrt(math.pi / 2) / 6


def estimate_noise_sigma(frame: torch.Tensor) -> torch.Tensor:
    """frame: float (N, C, H, W) in [0, 1], H and W >= 3 -> (N, 1, 1, 1): the noise standard
    deviation (same units), averaged over the channels."""
    n, c, h, w = frame.shape
    kernel = torch.tensor(_KERNEL, dtype=frame.dtype, device=frame.device).view(1, 1, 3, 3)
    response = F.conv2d(frame.reshape(n * c, 1, h, w), kernel).abs()
    return (response.mean(dim=(1, 2, 3)).reshape(n, c).mean(dim=1) * _SCALE).view(n, 1, 1, 1)


class NoiseBound(nn.Module):
    """Soft-clip a restored frame's change from its input to what the input's noise allows."""

    def __init__(self, k: float) -> None:
        super().__init__()
        if k <= 0:
            raise ValueError(f"NoiseBound: k must be > 0, got {k}")
        self.k = k

    def forward(self, centre: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """centre, restored: float (N, 3, H, W) in about [0, 1] (the input's centre frame and the
        network's output) -> (N, 3, H, W): centre + b * tanh((restored - centre) / b), where
        b = k * sigma_hat * (1 + (sigma_hat / KNEE)^2) per window (never 0: a floor of 1e-4)."""
        sigma = estimate_noise_sigma(centre)
        bound = (self.k * sigma * (1 + (sigma / KNEE) ** 2)).clamp_min(1e-4)
        return centre + bound * torch.tanh((restored - centre) / bound)
