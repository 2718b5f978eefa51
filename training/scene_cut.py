"""Windows across a scene cut: frames of another scene are replaced before the network sees them.

A window next to a cut in edited footage holds frames of two scenes. The networks were never shown
one, and fuse the other scene's frames into the centre: lightly noisy frames next to a cut came
back worse than their input (denoise, sigma 2: up to -3.4 dB; benchmarks/RESULTS.md, 2026-12-07
15:59-17:01). Here each frame is compared with the centre frame on small grey thumbnails (1/32
of the frame's size), where motion between neighbouring frames moves little and a cut changes
nearly everything; a frame of another scene is replaced by its mirror image about the centre
(as the window model mirrors a stream's first and last frames), or by the centre frame itself if
that one is of another scene too. Inside the exported graph of every network whose window is
fused as one (denoise, deblock, deblur, sr4; not the masked inpaint, whose propagation checks each
pixel it copies), a few cheap nodes and one gather per window. sr4's frames are 4x smaller: it starts
from every pixel (`stride`) so that its thumbnails, and the threshold, are at the same scale.
"""
from __future__ import annotations

import torch

from training.flow import grey, half

STRIDE = 4     # thumbnails start from every STRIDE-th pixel (cheap; the halvings then average)
HALVINGS = 3   # ... and are halved this many times: 1/32 of the frame's size
# Mean absolute difference of the thumbnails (in [0, 1] units) above which a frame counts as
# another scene. On the development and held-out sources, frames 1-2 apart differed by at most
# 26 grey levels (fast motion on bikes); across bikes' five cuts 40-77, two clips spliced 40-41.
CUT_LEVEL = 32 / 255


def other_scene(frames: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """frames (N, T, 3, H, W) in [0, 1] -> (N, T) bool: True where a frame is not of the centre
    frame's scene (never for the centre itself). `stride`: STRIDE for full-size frames, STRIDE /
    the factor for frames that were downscaled by it."""
    n, t = frames.shape[:2]
    thumbs = grey(frames[..., ::stride, ::stride].flatten(0, 1))
    for _ in range(HALVINGS):
        thumbs = half(thumbs)
    thumbs = thumbs.unflatten(0, (n, t))
    change = (thumbs - thumbs[:, t // 2 : t // 2 + 1]).abs().mean(dim=(2, 3, 4))
    return change > CUT_LEVEL


def same_scene(frames: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """frames (N, T, 3, H, W) in [0, 1] -> the same with every frame of another scene than the
    centre's replaced by its mirror about the centre, or by the centre if that is of another scene
    too (`stride`: `other_scene`)."""
    n, t = frames.shape[:2]
    centre = t // 2
    other = other_scene(frames, stride)
    position = torch.arange(t, device=frames.device).expand(n, t)
    mirror = 2 * centre - position
    source = torch.where(~other, position, torch.where(~other.flip(1), mirror, torch.full_like(position, centre)))
    # One gather of whole frames, cheaper in ONNX Runtime than choosing each pixel with Where.
    rows = (source + t * torch.arange(n, device=frames.device).view(n, 1)).flatten()
    return frames.flatten(0, 1).index_select(0, rows).unflatten(0, (n, t))
