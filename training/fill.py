"""Hole filling in torch, so it runs inside the exported graph: a smooth fill of unknown pixels
from the known ones around them.

Pull-push (pooling and resizing only) fills holes of any size; propagation fills the holes of the
grey frames it estimates flow on with it (training/propagation.py), where a hole must not look
like a moving edge. The inpainting network starts its global residual from `harmonic_fill`
(training/network.py): pull-push with Jacobi steps of Laplace's equation inside the holes at every
pyramid level, which interpolates thin holes (text, timestamps) from their nearest known pixels as
OpenCV's Navier-Stokes inpainting does, where pull-push blends in block averages from farther away.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.flow import box_mean, grey, half


def pull_push_fill(premultiplied: torch.Tensor, weight: torch.Tensor, levels: int = 6, smoothing: int = 0) -> torch.Tensor:
    """Fill holes by pull-push (Gortler et al. 1996): average the known pixels down an image
    pyramid, then blend the coarser fill back in where a level's pixels are not fully known.

    premultiplied: (N, C, H, W) colours times `weight`; weight: (N, 1, H, W) in [0, 1], 1 = known
    ({0, 1} when smoothing). Returns (N, C, H, W): the known pixels unchanged, holes smoothly
    interpolated. Pooling and bilinear resizing (and 3x3 convolutions when smoothing), always
    `levels` of them (odd sides round up, so a level is never empty): the exported ONNX graph
    works for any H and W.
    smoothing: Jacobi steps of Laplace's equation in the holes after each level's push (each
    hidden pixel becomes the mean of its 4 neighbours, those inside the frame; known pixels
    stay): 0 is plain pull-push.
    """
    if levels == 0:
        return premultiplied / weight.clamp(min=1e-3)
    pooled = 4 * half(torch.cat([premultiplied, weight], dim=1))
    # Pull: a coarse pixel with any known child is known (weight saturates at 1), with the
    # weighted mean colour of its children; that keeps fills sharp near the hole's edge.
    total = pooled[:, -1:]
    coarse_weight = total.clamp(max=1.0)
    coarse_colour = pooled[:, :-1] / total.clamp(min=1e-3)
    coarse = pull_push_fill(coarse_colour * coarse_weight, coarse_weight, levels - 1, smoothing)
    up = F.interpolate(coarse, size=premultiplied.shape[-2:], mode="bilinear", align_corners=False)
    hidden = 1 - weight
    filled = premultiplied + hidden * up
    if smoothing:
        # Neighbour sums by a depthwise convolution with zero padding, plus the pixel itself for
        # each neighbour outside the frame: the same as replicate padding (a 1x1 level keeps its
        # value). Slices of a padded copy did the same 6x faster in PyTorch on CPU, but 1.5x
        # slower in ONNX Runtime and 2.5x slower to export.
        channels = filled.shape[1]
        cross = filled.new_tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
        outside = 4.0 - F.conv2d(torch.ones_like(weight), cross, padding=1)
        per_channel = cross.expand(channels, 1, 3, 3)
        for _ in range(smoothing):
            neighbours = F.conv2d(filled, per_channel, padding=1, groups=channels) + outside * filled
            filled = premultiplied + hidden * (0.25 * neighbours)
    return filled


HARMONIC_STEPS = 10  # Jacobi steps per pyramid level


def harmonic_fill(premultiplied: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Pull-push with HARMONIC_STEPS Jacobi steps at every level: a multigrid solve of Laplace's
    equation in the holes, so thin holes take their nearest known pixels and wide ones a smooth
    membrane over their edges. Arguments and result as `pull_push_fill`, weight in {0, 1}.

    On the inpainting grid (benchmarks/results_inpaint.md), starting the stage 6 network from
    this instead of pull-push raised its static-mask rows by 0.47 dB on average and the held-out
    clip by 0.24 dB, with the same weights; 20 ms per 640x368 frame in ONNX Runtime on this CPU
    (160 ms in PyTorch)."""
    return pull_push_fill(premultiplied, weight, smoothing=HARMONIC_STEPS)


def harmonic_fill_macs(height: int, width: int, channels: int = 3, levels: int = 6) -> int:
    """Multiply-accumulates of `harmonic_fill`'s convolutions (3x3 taps, as FLOP counters count
    them) on an (N=1, channels, height, width) frame: each level's neighbour count and steps."""
    macs = 0
    for _ in range(levels):
        macs += height * width * 9 * (1 + HARMONIC_STEPS * channels)
        height, width = (height + 1) // 2, (width + 1) // 2
    return macs


THIN_RADIUS = 1        # px: holes at most 2 * THIN_RADIUS wide (strokes of 1-2 px) are thin
DETAIL_WINDOW = 15     # px, the box the surroundings' detail is averaged over
DETAIL_KNEE = 0.02     # mean |grey step| between known neighbours (0..1; ~5 grey levels) at which
                       # the network gets half its say on a thin hole


def network_share(filled: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """How much of the network's change to the smooth fill to keep, per hidden pixel: (N, 1, H, W)
    in [0, 1] for `filled` (N, 3, H, W) (the smooth fill; only its known pixels are read) and
    `hidden` (N, 1, H, W) in {0, 1}.

    1 in holes with a core (hidden pixels with no known pixel within THIN_RADIUS) and next to
    it; in thin holes (1-2 px strokes of burnt-in text), d / (d + DETAIL_KNEE), d the mean grey step between
    known neighbours within DETAIL_WINDOW: over flat surroundings a thin hole is best filled from
    its nearest known pixels, as `harmonic_fill` and OpenCV's Navier-Stokes do, and the network's
    texture only adds error there (timestamps over sky, grid cells of 2026-12-07 in
    benchmarks/RESULTS.md); over texture the network's fill is better. Pooling and elementwise
    steps only: cheap at any size."""
    known = 1 - hidden
    core = 1 - F.max_pool2d(known, 2 * THIN_RADIUS + 1, stride=1, padding=THIN_RADIUS)
    thick = F.max_pool2d(core, 2 * THIN_RADIUS + 1, stride=1, padding=THIN_RADIUS)
    g = grey(filled)
    pair_x = known[..., :, 1:] * known[..., :, :-1]
    pair_y = known[..., 1:, :] * known[..., :-1, :]
    steps = F.pad((g[..., :, 1:] - g[..., :, :-1]).abs() * pair_x, (0, 1)) + \
        F.pad((g[..., 1:, :] - g[..., :-1, :]).abs() * pair_y, (0, 0, 0, 1))
    pairs = F.pad(pair_x, (0, 1)) + F.pad(pair_y, (0, 0, 0, 1))
    detail = box_mean(steps, DETAIL_WINDOW // 2) / box_mean(pairs, DETAIL_WINDOW // 2).clamp_min(1e-3)
    return torch.maximum(thick, detail / (detail + DETAIL_KNEE))


def keep_smooth_fill(restored: torch.Tensor, smooth: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """The known pixels from `smooth` (a smooth fill of the hole, whose known pixels are the
    frame's own) and, in the hole, `restored` pulled back to `smooth` by `network_share`: thin
    strokes over flat surroundings keep the smooth fill. All (N, C, H, W) but hidden (N, 1, H, W)
    in {0, 1}."""
    return smooth * (1 - hidden) + (smooth + network_share(smooth, hidden) * (restored - smooth)) * hidden
