"""How far apart two uint8 images are: the measures the export and engine checks gate on."""
from __future__ import annotations

import math

import numpy as np


class ParityError(RuntimeError):
    """An exported model disagrees with its reference beyond the allowed tolerance."""


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> int:
    """Largest absolute difference in grey levels between two same-shape uint8 arrays."""
    if a.shape != b.shape:
        raise ParityError(f"shape mismatch: {a.shape} vs {b.shape}")
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(initial=0))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two same-shape arrays; inf when identical."""
    if a.shape != b.shape:
        raise ParityError(f"shape mismatch: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)
