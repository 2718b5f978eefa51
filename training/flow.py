"""Dense optical flow and warping as torch modules, so that they run inside the exported graph.

Denoise aligns each window's neighbours onto its centre frame with them, and inpainting
propagates what other frames show into the centre frame's holes (training/propagation.py). They
are part of the network's forward pass, so training, evaluation, the ONNX export and serving
(ONNX Runtime on CPU, TensorRT on GPU) run the same code: no OpenCV in the window model.

The estimator is classical, with no learned weights: coarse-to-fine Lucas-Kanade (Bouguet's
pyramidal scheme, solved densely). At each pyramid level, from the coarser level's flow upsampled:

    J_w   = the other frame warped by the current flow (bilinear GridSample)
    It    = J_w - I                                   (I: the reference frame)
    [A B; B C] du = -[G*(Ix It); G*(Iy It)],  A = G*(Ix^2) + lambda, B = G*(Ix Iy), C = G*(Iy^2) + lambda

with G a Gaussian window and Ix, Iy the reference's gradients; lambda (Tikhonov) keeps flat areas
at the coarser level's motion instead of amplifying noise. Frames are grey and smoothed first:
noise up to sigma 50 otherwise drives the data term. Operators: Conv, AveragePool, Resize, Pad,
GridSample and elementwise arithmetic only (all in TensorRT 10's ONNX parser; no DFT).

Sign convention (as OpenCV's calcOpticalFlow): flow maps the reference onto the other frame,
other(x + flow(x)) ~ reference(x); `warp(other, flow)` is then aligned with the reference.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

STRIDE = 4            # flow is estimated at 1/STRIDE resolution and upsampled (as DIS's fast preset
                      # stops at 1/4): 16x cheaper, and block averaging suppresses the noise
LEVELS = 3            # pyramid levels from 1/STRIDE: motion up to ~STRIDE * 2^LEVELS * 2 px (~60 px)
ITERATIONS = 3        # Lucas-Kanade updates per level
ALIGN_ITERATIONS = 1  # the same for `align_window` (denoise, deblock): with noisy frames the later updates
                      # fit the noise more than the motion; the shipped weights gave better output on every
                      # noisy grid cell and source with 1 than with the 3 they were trained with
                      # (benchmarks/RESULTS.md, 2026-12-07 08:36)
WINDOW_SIGMA = 1.5    # px at 1/STRIDE, the Gaussian window of the local least squares
SMOOTH_SIGMA = 0.75   # px at 1/STRIDE, pre-smoothing of the block-averaged grey frames
REGULARISER = 1e-4    # lambda, in (grey level / 255)^2 per px^2: flat areas keep the coarse flow
CONFIDENCE_SIGMA = 2.0  # px, the reach of the confidence-weighted smoothing of the flow at coarse levels
FINE_CONFIDENCE_SIGMA = 0.5  # px, the same at the finest level (motion edges stay sharper)
MAX_UPDATE = 2.0      # px per iteration at each level: a badly conditioned solve cannot run away
MATCH_TOLERANCE = 0.02  # grey (0..1), mean |warped - reference| at which a flow's confidence halves


def grey(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) luma (BT.601 weights)."""
    weights = frames.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (frames * weights).sum(dim=1, keepdim=True)


def _gaussian_taps(sigma: float) -> list[float]:
    radius = max(1, math.ceil(2.5 * sigma))
    taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    return [t / sum(taps) for t in taps]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of every channel of (N, C, H, W), replicated borders."""
    taps = _gaussian_taps(sigma)
    radius = len(taps) // 2
    c = x.shape[1]
    kernel = x.new_tensor(taps)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (d/dx, d/dy) of (N, 1, H, W), replicated borders."""
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2])
    dy = 0.5 * (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1])
    return dx, dy


def block_mean(x: torch.Tensor, side: int) -> torch.Tensor:
    """Average pooling over side x side blocks; a partial block at the bottom or right edge
    averages the pixels it has (sides below `side` do not occur: the profiles start at 64 px).
    ceil_mode rather than padding by `-H % side`: the exporter's symbolic sizes stay simple."""
    return F.avg_pool2d(x, side, ceil_mode=True, count_include_pad=False)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2 radius + 1)^2 box around each pixel of (N, C, H, W), zeros outside: two
    1-D average pools (4 radius + 2 samples a pixel rather than (2 radius + 1)^2)."""
    side = 2 * radius + 1
    x = F.avg_pool2d(x, (1, side), stride=1, padding=(0, radius))
    return F.avg_pool2d(x, (side, 1), stride=1, padding=(radius, 0))


def half(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling to ceil(H / 2) x ceil(W / 2): an odd side's last row or column is
    averaged with its replica, so no level is ever empty. Padded by a constant 1 and pooled
    rounding down, not padded by `H % 2`: the exporter's symbolic sizes stay simple, and unlike
    ceil_mode the window always fits the input (TensorRT checks that, down to 1 x 1 levels)."""
    return F.avg_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2)


def pixel_grid(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates of (..., H, W) `like`: xs (1, 1, W) and ys (1, H, 1). Made once per size
    and reused (`grid=` below) where a loop warps at one size many times: fewer nodes in the
    exported graph, whose export time grows with them."""
    h, w = like.shape[-2:]
    xs = torch.arange(w, dtype=like.dtype, device=like.device).view(1, 1, w)
    ys = torch.arange(h, dtype=like.dtype, device=like.device).view(1, h, 1)
    return xs, ys


def landing(flow: torch.Tensor, grid: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each pixel p lands, p + flow(p): (x, y), each (N, H, W) in pixels; flow (N, 2, H, W)."""
    xs, ys = grid if grid is not None else pixel_grid(flow)
    return xs + flow[:, 0], ys + flow[:, 1]


def grid_coordinate(p: torch.Tensor, side: int) -> torch.Tensor:
    """Pixel coordinate `p` along a side of `side` pixels -> GridSample's normalised coordinate
    (align_corners=False: -1 and 1 are the outer edges of the corner pixels, so pixel p sits at
    (2p + 1) / side - 1; no division by side - 1, which a one-pixel side would make zero), first
    clamped to the outer pixel centres. Clamped, "zeros" padding gives exactly the numbers of
    "border" padding (every tap that carries weight is inside), and ONNX Runtime has a fast path
    only for bilinear with zeros padding (2.5-3x faster at 640x360, where the warp of denoise's
    four neighbours was a quarter of its graph)."""
    return (2.0 * p.clamp(0, side - 1) + 1.0) / side - 1.0


def sample(x: torch.Tensor, at: tuple[torch.Tensor, torch.Tensor], mode: str = "bilinear") -> torch.Tensor:
    """x (N, C, H, W) sampled at `at` (`landing`); outside the frame the border pixel is repeated."""
    h, w = x.shape[-2:]
    grid = torch.stack([grid_coordinate(at[0], w), grid_coordinate(at[1], h)], dim=-1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def off_frame(at: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(N, 1, H, W) bool: where `at` (`landing`) falls outside the frame."""
    x, y = at
    h, w = x.shape[-2:]
    return ((x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)).unsqueeze(1)


def warp(x: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear",
         grid: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """x (N, C, H, W) sampled at (p + flow(p)); flow (N, 2, H, W) in pixels (x, y). Outside the
    frame the border pixel is repeated."""
    return sample(x, landing(flow, grid), mode)


def _refine(reference: torch.Tensor, other: torch.Tensor, flow: torch.Tensor, iterations: int, smooth: float) -> torch.Tensor:
    # Products are blurred together as channels of one tensor: one blur, not one per product
    # (the same numbers; half the blur nodes in the exported graph, which exports faster).
    ix, iy = gradients(reference)
    grid = pixel_grid(reference)
    a, b, c = gaussian_blur(torch.cat([ix * ix, ix * iy, iy * iy], dim=1), WINDOW_SIGMA).split(1, dim=1)
    a, c = a + REGULARISER, c + REGULARISER
    det = a * c - b * b
    for _ in range(iterations):
        it = warp(other, flow, grid=grid) - reference
        b1, b2 = gaussian_blur(torch.cat([ix * it, iy * it], dim=1), WINDOW_SIGMA).split(1, dim=1)
        du = -(c * b1 - b * b2) / det
        dv = -(a * b2 - b * b1) / det
        flow = flow + torch.cat([du, dv], dim=1).clamp(-MAX_UPDATE, MAX_UPDATE)
    # Normalised convolution by the structure tensor's smaller eigenvalue: where the least squares
    # were poorly conditioned (flat areas, edges in one direction) the flow comes from the textured
    # pixels around, instead of running away on noise.
    half_trace = 0.5 * (a + c)
    confidence = half_trace - torch.sqrt((0.25 * (a - c) ** 2 + b * b).clamp(min=0.0))
    # Nor does a flow that found no match: where it points outside the frame the warp compared the
    # reference with replicated border pixels, and where the warped frame still differs (occlusion,
    # a filled hole) the least squares fitted nothing. Without this, the garbage flow of content
    # leaving the frame spread inwards: 20-60 px wrong over a pan of 30 px (chelsea, 10 frames apart).
    at = landing(flow, grid)
    residual = gaussian_blur((sample(other, at) - reference).abs(), WINDOW_SIGMA)
    confidence = confidence * (~off_frame(at)).to(flow.dtype) / (1.0 + (residual / MATCH_TOLERANCE) ** 2)
    smoothed = gaussian_blur(torch.cat([confidence * flow, confidence], dim=1), smooth)
    return smoothed[:, :2] / smoothed[:, 2:].clamp(min=1e-12)


def estimate_flow(reference: torch.Tensor, other: torch.Tensor, levels: int = LEVELS,
                  iterations: int = ITERATIONS) -> torch.Tensor:
    """Dense flow (N, 2, H, W) in pixels from `reference` to `other`, both (N, 1, H, W) grey in
    [0, 1] already smoothed (`flow_images`): other(x + flow(x)) ~ reference(x)."""
    pyramid = [(reference, other)]
    for _ in range(levels - 1):
        pyramid.append((half(pyramid[-1][0]), half(pyramid[-1][1])))
    flow = None
    for ref, oth in reversed(pyramid):
        if flow is None:
            flow = torch.zeros_like(ref).expand(-1, 2, -1, -1)
        else:
            # Twice the coarser flow, resized to this level (odd sides round up when halving).
            flow = 2.0 * F.interpolate(flow, size=ref.shape[-2:], mode="bilinear", align_corners=False)
        finest = ref.shape[-1] == reference.shape[-1]
        flow = _refine(ref, oth, flow, iterations, FINE_CONFIDENCE_SIGMA if finest else CONFIDENCE_SIGMA)
    return flow


def flow_images(frames: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, ceil(H/stride), ceil(W/stride)) what flow is estimated
    on: grey, averaged over stride x stride blocks (which also averages the noise away: sigma 50
    becomes 12.5 at stride 4), then smoothed."""
    return gaussian_blur(block_mean(grey(frames), stride), SMOOTH_SIGMA)


def dense_flow(reference: torch.Tensor, other: torch.Tensor, height: int, width: int,
               stride: int = STRIDE, iterations: int = ITERATIONS) -> torch.Tensor:
    """Flow between flow images (`flow_images` at `stride`) at full resolution: (N, 2, height,
    width) pixels."""
    return full_resolution(estimate_flow(reference, other, iterations=iterations), height, width, stride)


def full_resolution(coarse: torch.Tensor, height: int, width: int, stride: int = STRIDE) -> torch.Tensor:
    """Flow (N, 2, h, w) at 1/stride resolution, in its pixels -> (N, 2, height, width) in full-size
    pixels (h = ceil(height / stride); exact stride x upsampling where height and width are
    multiples of it; the networks call it at the frames' own size, any size). Resized to
    (height, width) directly rather than upsampled and cropped: the exporter then knows the result
    has the frame's own size, which keeps its symbolic shape checks cheap. Scaled before the resize,
    on 1/stride^2 of the pixels: bilinear interpolation is linear and stride a power of two, so
    the result is the same to the bit."""
    if stride == 1:
        return coarse
    return F.interpolate(stride * coarse, size=(height, width), mode="bilinear", align_corners=False)


def align_window(frames: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """Warp each neighbour of the centre frame onto it.

    frames: (N, T, 3, H, W) RGB in [0, 1]. Returns the same shape: the centre frame unchanged,
    neighbour t sampled at x + flow_t(x), where flow_t maps the centre onto frame t, estimated at
    1/stride of the frames' resolution (STRIDE for full-size frames; low-resolution ones, sr4's,
    need every pixel: 1). No gradient flows through the flow estimate (it is a fixed pre-step, not
    a learned one)."""
    n, t, c, h, w = frames.shape
    if t == 1:
        return frames
    centre = t // 2
    with torch.no_grad():
        greys = flow_images(frames.reshape(n * t, c, h, w), stride)
        greys = greys.reshape(n, t, 1, greys.shape[-2], greys.shape[-1])
        others = torch.cat([greys[:, :centre], greys[:, centre + 1 :]], dim=1).flatten(0, 1)
        reference = greys[:, centre : centre + 1].expand(-1, t - 1, -1, -1, -1).flatten(0, 1)
        flow = dense_flow(reference, others, h, w, stride, ALIGN_ITERATIONS)
    neighbours = torch.cat([frames[:, :centre], frames[:, centre + 1 :]], dim=1).reshape(n * (t - 1), c, h, w)
    warped = warp(neighbours, flow).reshape(n, t - 1, c, h, w)
    return torch.cat([warped[:, :centre], frames[:, centre : centre + 1], warped[:, centre:]], dim=1)
