"""Pull-push hole filling: a smooth fill of unknown pixels from the known ones around them, in
torch (pooling and resizing only), so it runs inside the exported graph.

Used twice: the inpainting network starts its global residual from it (training/network.py), and
propagation fills the holes of the grey frames it estimates flow on (training/propagation.py),
where a hole must not look like a moving edge.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.flow import half


def pull_push_fill(premultiplied: torch.Tensor, weight: torch.Tensor, levels: int = 6) -> torch.Tensor:
    """Fill holes by pull-push (Gortler et al. 1996): average the known pixels down an image
    pyramid, then blend the coarser fill back in where a level's pixels are not fully known.

    premultiplied: (N, C, H, W) colours times `weight`; weight: (N, 1, H, W) in [0, 1], 1 = known.
    Returns (N, C, H, W): the known pixels unchanged, holes smoothly interpolated. Pooling and
    bilinear resizing only, always `levels` of them (odd sides round up, so a level is never
    empty): the exported ONNX graph works for any H and W.
    """
    if levels == 0:
        return premultiplied / weight.clamp(min=1e-3)
    pooled = 4 * half(torch.cat([premultiplied, weight], dim=1))
    # Pull: a coarse pixel with any known child is known (weight saturates at 1), with the
    # weighted mean colour of its children; that keeps fills sharp near the hole's edge.
    total = pooled[:, -1:]
    coarse_weight = total.clamp(max=1.0)
    coarse_colour = pooled[:, :-1] / total.clamp(min=1e-3)
    coarse = pull_push_fill(coarse_colour * coarse_weight, coarse_weight, levels - 1)
    up = F.interpolate(coarse, size=premultiplied.shape[-2:], mode="bilinear", align_corners=False)
    return premultiplied + (1 - weight) * up
