"""Wiener deconvolution of a window by its blur kernel, as a torch module inside the exported graph.

The deblur network sees both the blurred window and this deconvolved one (NetConfig.deconvolved).
A network trained only on blurred frames must discover the kernel implicitly, which small networks
trained on a CPU barely do; with the right kernel, plain Wiener deconvolution recovers most of the
detail. The kernel comes from the window model (training/blur_kernel.py estimates it on the centre
frame, a small resolution-independent NumPy step), as the net input BLUR_KERNEL; everything per
pixel happens here, in the graph that ONNX Runtime runs on CPU and TensorRT on GPU.

Why a matrix DFT: the Wiener inverse of a motion blur has a long support (truncating it to 63 x 63
pixels still loses 4 dB against the exact filter on bikes), so it must be applied in the frequency
domain. ONNX's DFT operator is not parsed by TensorRT before 11.2 and torch's exporter does not
emit it, so the transform is written with MatMul: each axis, padded to a multiple of RADIX, is
split as n = B*a + b (Cooley-Tukey with two factors), so a length-L transform costs RADIX + L/RADIX
multiply-adds per sample instead of L: two matrix products (the factor on the left for a middle
axis, on the right for the last, never a Transpose: ONNX Runtime spent a third of the module's
time transposing in the first version) and one twiddle product. The frequencies
stay in that split order ([k1, k2] holds frequency k1 + RADIX*k2); the Wiener filter is built in
the same order and the inverse undoes it, so no reordering is ever needed. Two real planes travel
as one complex plane (the filter of a real kernel is Hermitian, so the two come back apart as the
real and imaginary parts).

Precision: the transforms must run in FP32 (sums over up to 2,208 samples): export marks this
module's nodes and an FP16 TensorRT build pins them to FP32 (export/fp32_layers.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NSR = 0.01      # Wiener noise-to-signal ratio
PAD = 24        # reflected border before the (circular) transform: longer than the kernel (21 px)
RADIX = 32      # the first factor of every padded side; sides are padded up to a multiple of it


def _phases(rows: torch.Tensor, cols: torch.Tensor, length, sign: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of sign * 2 pi * outer(rows, cols) / length: a (part of a) DFT matrix."""
    angle = torch.outer(rows, cols) * (sign * 2 * math.pi) / length
    return torch.cos(angle), torch.sin(angle)


def _mm(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x (..., K) @ m (K, M) as one two-dimensional GEMM (no batched-matmul shape cases for the
    exporter to guard on, and one large GEMM for ONNX Runtime)."""
    return (x.reshape(-1, x.shape[-1]) @ m).reshape(*x.shape[:-1], m.shape[-1])


def _complex_right(xr: torch.Tensor, xi: torch.Tensor, mr: torch.Tensor, mi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x @ m) for complex x (..., K) and m (K, M): a contraction over x's last axis."""
    return _mm(xr, mr) - _mm(xi, mi), _mm(xr, mi) + _mm(xi, mr)


def _complex_left(mr: torch.Tensor, mi: torch.Tensor, xr: torch.Tensor, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m @ x) for complex m (K, M) and x (..., M, T): a contraction over x's second-last axis,
    the 2-D m broadcast over x's leading axes (no transpose of x)."""
    return mr @ xr - mi @ xi, mr @ xi + mi @ xr


def _complex_mul(xr: torch.Tensor, xi: torch.Tensor, yr: torch.Tensor, yi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return xr * yr - xi * yi, xr * yi + xi * yr


def dft(xr: torch.Tensor, xi: torch.Tensor, dim: int, inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The DFT (or its inverse) of a complex tensor given as (real, imag) along dim -1 (columns)
    or -2 (rows), whose length L must be a multiple of RADIX.

    Forward: natural sample order in, split frequency order out (position k1 * L/RADIX + k2 holds
    frequency k1 + RADIX * k2); inverse: the reverse. Both contractions are matrix products with
    the 2-D DFT factor on the left (over a middle axis) or the right (over the last): ONNX MatMul
    with broadcasting and no Transpose, which ONNX Runtime runs far slower than the GEMMs."""
    if dim not in (-1, -2):
        raise ValueError(f"dft: dim must be -1 or -2, got {dim}")
    shape = xr.shape
    length = shape[dim]
    b = length // RADIX
    sign = 1.0 if inverse else -1.0
    ra = torch.arange(RADIX, dtype=xr.dtype, device=xr.device)
    rb = torch.arange(b, dtype=xr.dtype, device=xr.device)
    fa = _phases(ra, ra, RADIX, sign)          # symmetric
    fb = _phases(rb, rb, b, sign)              # symmetric
    twiddle = _phases(ra, rb, length, sign)    # [k1, b]
    if dim == -1:
        x = (xr.reshape(*shape[:-1], RADIX, b), xi.reshape(*shape[:-1], RADIX, b))              # [a | k1, b | k2]
        if not inverse:
            y = _complex_right(*_complex_mul(*_complex_left(*fa, *x), *twiddle), *fb)
        else:
            y = _complex_left(*fa, *_complex_mul(*_complex_right(*x, *fb), *twiddle))
    else:
        twiddle = (twiddle[0].unsqueeze(-1), twiddle[1].unsqueeze(-1))                          # over the columns
        lead, width = shape[:-2], shape[-1]
        wide = (*lead, RADIX, b * width)                # the first-factor contraction: one GEMM per plane
        x = (xr.reshape(*lead, RADIX, b, width), xi.reshape(*lead, RADIX, b, width))             # [a | k1, b | k2, w]
        if not inverse:
            y = _complex_left(*fa, x[0].reshape(wide), x[1].reshape(wide))
            y = _complex_mul(y[0].reshape(x[0].shape), y[1].reshape(x[0].shape), *twiddle)
            y = _complex_left(*fb, *y)
        else:
            y = _complex_mul(*_complex_left(*fb, *x), *twiddle)
            y = _complex_left(*fa, y[0].reshape(wide), y[1].reshape(wide))
    yr, yi = y[0].reshape(shape), y[1].reshape(shape)
    return (yr / length, yi / length) if inverse else (yr, yi)


def split_frequencies(length, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """(L,) the frequency held at each position of `dft`'s output."""
    b = length // RADIX
    k1 = torch.arange(RADIX, dtype=dtype, device=device).reshape(RADIX, 1)
    k2 = torch.arange(b, dtype=dtype, device=device).reshape(1, b)
    return (k1 + RADIX * k2).reshape(-1)


def kernel_spectrum(kernel: torch.Tensor, height, width) -> tuple[torch.Tensor, torch.Tensor]:
    """The DFT on a height x width grid of each (N, k, k) kernel centred on the origin, as (real,
    imag) (N, height, width) in `dft`'s split order on both axes (the layout `WienerDeconvolution`
    transforms frames into). A direct sum over the k*k taps: no padded kernel image."""
    k = kernel.shape[-1]
    offsets = torch.arange(k, dtype=kernel.dtype, device=kernel.device) - k // 2
    eh = _phases(split_frequencies(height, kernel.dtype, kernel.device), offsets, height, -1.0)   # (H, k)
    ew = _phases(split_frequencies(width, kernel.dtype, kernel.device), offsets, width, -1.0)     # (W, k)
    # K[fh, fw] = sum over rows u, columns v of eh[fh, u] * kernel[u, v] * ew[fw, v]
    columns = (_mm(kernel, ew[0].transpose(0, 1)), _mm(kernel, ew[1].transpose(0, 1)))         # (N, k, W)
    return _complex_left(*eh, *columns)                                                         # (N, H, W)


def matmul_flops(planes: int, height: int, width: int, kernel_size: int) -> int:
    """Floating-point operations (2 per multiply-add) of the GEMMs of one window's deconvolution:
    its kernel's spectrum, then a forward and an inverse transform of ceil(planes / 2) complex
    planes along each padded side (RADIX + L / RADIX multiply-adds per complex sample, 4 real each)."""
    sides = [RADIX * -(-(n + 2 * PAD) // RADIX) for n in (height, width)]
    area, blocks = sides[0] * sides[1], sum(n // RADIX for n in sides)
    transforms = 2 * 2 * 4 * -(-planes // 2) * area * (2 * RADIX + blocks)
    spectrum = 2 * 2 * kernel_size * kernel_size * sides[1] + 2 * 4 * kernel_size * area
    return transforms + spectrum


class WienerDeconvolution(nn.Module):
    """Every plane of a window deconvolved by its window's blur kernel (no parameters)."""

    def __init__(self, nsr: float = NSR) -> None:
        super().__init__()
        self.nsr = nsr

    def forward(self, planes: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """planes: float (N, C, H, W) in [0, 1], any H, W >= 13 (the reflected border needs
        PAD / 2 + 1 pixels); kernel: float (N, k, k), k odd <= 2 * PAD + 1, sum 1, in the convolution
        convention (blurred = sharp convolved with it), one per window. Returns float (N, C, H, W),
        the Wiener estimate of the sharp planes clamped to [0, 1]."""
        n, c, h, w = planes.shape
        # Padded sides RADIX * B (B >= 2): written as a multiple, which the exporter's shape
        # reasoning follows through every reshape below.
        blocks_h, blocks_w = (h + 2 * PAD + RADIX - 1) // RADIX, (w + 2 * PAD + RADIX - 1) // RADIX
        pad_h, pad_w = RADIX * blocks_h - h - 2 * PAD, RADIX * blocks_w - w - 2 * PAD
        # The border repeats the edge pixels (any side works, unlike a reflection longer than
        # the side), then the transform's size is reached on the bottom and right.
        padded = F.pad(planes, (PAD, PAD + pad_w, PAD, PAD + pad_h), mode="replicate")
        height, width = padded.shape[-2:]
        # Two real planes per complex one (the first half of the planes real, the second imaginary;
        # an odd count lends the last half plane 0 again); along the rows, then the columns.
        half = (c + 1) // 2
        zr, zi = dft(*dft(padded[:, :half], padded[:, c - half :], -2), -1)
        kr, ki = kernel_spectrum(kernel, height, width)
        gain = kr * kr + ki * ki + self.nsr
        zr, zi = _complex_mul(zr, zi, (kr / gain).unsqueeze(1), (-ki / gain).unsqueeze(1))
        zr, zi = dft(*dft(zr, zi, -1, inverse=True), -2, inverse=True)
        inside = (Ellipsis, slice(PAD, PAD + h), slice(PAD, PAD + w))
        return torch.cat([zr[inside], zi[inside][:, 2 * half - c :]], dim=1).clamp(0.0, 1.0)
