"""Flow-guided propagation for inpainting: fill the centre frame's hidden pixels with what a
farther frame of the window shows there, before the network inpaints the rest.

Video inpainting beats single-image inpainting because a pixel hidden now is often visible a few
frames earlier or later (the mask moved, or the camera did). The network's body sees only a few
frames and finds moving content only within its receptive field; this step looks over the whole
window and copies a pixel from another frame only where three checks agree that it shows the
same point:

  flow        dense optical flow (training/flow.py: pyramidal Lucas-Kanade at 1/4 resolution) from
              the centre frame to each other frame and back, on grey frames whose hidden pixels are
              filled first (training/fill.py pull-push), so a hole does not look like a moving edge;
  consistency the flow there and back returns to within `max_flow_error` px of where it started
              (occlusions and flow dragged across the hole fail this);
  agreement   around the pixel, the warped frame matches the centre frame on the pixels both show
              (mean absolute difference below `max_mismatch` grey levels over a
              (2 * radius + 1)^2 box, or a box three times wider where the first holds too few
              such pixels): a wrong flow, a scene cut or a lighting change fails this. With too
              few such pixels in both boxes (deep inside a wide hole) nothing can be compared:
              only a still flow (under STILL px, a static background behind a moving object)
              propagates there, on consistency alone.
The source pixel must itself be visible in its frame (not within 1 px of its frame's mask, so
bilinear sampling never mixes in a hidden pixel). The nearest frame in time that passes wins. What
passes is written into the centre frame and removed from its mask, so the network gets smaller
holes with more known pixels around them.

Torch only, no learned weights, no data-dependent control flow: the inpainting network runs it
first in its forward pass (training/network.py, NetConfig.propagation_frames), so training,
evaluation and the exported graph (ONNX Runtime on CPU, TensorRT on GPU) run this one definition.
Operators: those of training/flow.py plus MaxPool and AveragePool (the box means).
Flow and the checks at 1/STRIDE run for all T - 1 neighbours as one batch; the full-resolution
checks and the nearest-first choice loop over the neighbours (memory).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.fill import pull_push_fill
from training.flow import (SMOOTH_SIGMA, STRIDE, block_mean, box_mean, estimate_flow, full_resolution, gaussian_blur,
                           grey, grid_coordinate, landing, off_frame, pixel_grid, sample, warp)

# Thresholds chosen on bigbuckbunny (8 windows of 384x384, the shipped network; not the held-out
# clip): 1.5 px / 5 grey levels 25.97 dB in the mask, 0.5 / 10 (the OpenCV version's) 25.50,
# 1.5 / 10 25.79, 1 / 7 25.94, 2 / 7 25.83, 3 / 7 25.67 (benchmarks/results_inpaint.md). Checked again
# with the flow's match term and the agreement's evidence rule (stage 6 weights): 1.5 / 5 26.24,
# 1 / 5 26.09 (without the still-flow exception 26.22 at 1.5 / 5); without the evidence rule 1.5 / 5 25.93, 1 / 5 26.00, 1 / 3 25.78, 0.75 / 4 25.98.
MAX_FLOW_ERROR = 1.5       # px, forward-backward consistency (the flow is estimated at 1/STRIDE)
MAX_MISMATCH = 5.0         # grey levels, mean |warped - centre| on the blocks both see around
AGREEMENT_RADIUS = 2       # blocks of STRIDE px, half-side of the box agreement is measured over
                           # (5 x 5 blocks: 20 x 20 px)
MIN_EVIDENCE = 0.1         # share of an agreement box both frames must see for it to count
WIDE = 3                   # how much wider the box grows where the first sees too little
NO_EVIDENCE = 1e3          # the mismatch (grey levels) where neither box sees enough ...
STILL = 2.0                # ... unless the flow there moves less than this (px): a still background
FLOW_MARGIN = 2            # blocks around a hole whose flow is not trusted (the Lucas-Kanade
                           # window's reach, training/flow.py WINDOW_SIGMA)


def quarter_images(frames: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames (N, 3, H, W) in [0, 1] and masks (N, 1, H, W) (1 = hidden) at 1/STRIDE resolution,
    each STRIDE x STRIDE block averaging its known pixels only:
    (grey (N, 1, h, w) for flow, holes filled by pull-push so a hole does not look like a moving
    edge, then smoothed as training/flow.py `flow_images`; colour (N, 3, h, w); hidden (N, 1, h, w),
    1 where a block has a hidden pixel). Colour and known share are pooled apart and grey is
    taken at 1/STRIDE (it is linear): no full-resolution tensor wider than the frames is made."""
    known = 1.0 - masks
    weight = block_mean(known, STRIDE)
    colour = block_mean(frames * known, STRIDE) / weight.clamp(min=1e-6)
    grey_small = gaussian_blur(pull_push_fill(grey(colour) * weight, weight), SMOOTH_SIGMA)
    return grey_small, colour, (weight < 1.0 - 1e-3).float()


def complete_flow(coarse: torch.Tensor, hidden: torch.Tensor, target_hidden: torch.Tensor) -> torch.Tensor:
    """Flow (N, 2, h, w) at 1/STRIDE resolution from a reference frame to a target frame, with
    what it says where either frame is hidden (`quarter_images`: `hidden` in the reference, and
    `target_hidden` in the target, where the flow lands) and a margin around replaced by a
    pull-push fill of the flow around. There Lucas-Kanade compares a smooth fill, which it reads
    as no motion, and its window carries that a few blocks out; the scene behind a hole moves like
    the scene around it (the flow completion of flow-guided video inpainting)."""
    untrusted = torch.maximum(hidden, (warp(target_hidden, coarse) > 0.5).float())
    trusted = 1.0 - F.max_pool2d(untrusted, 2 * FLOW_MARGIN + 1, stride=1, padding=FLOW_MARGIN)
    return pull_push_fill(coarse * trusted, trusted)


def agreement(difference: torch.Tensor, both_seen: torch.Tensor, radius: int, motion: torch.Tensor) -> torch.Tensor:
    """Mean |warped - centre| in grey levels over the pixels both frames see in the
    (2 radius + 1)^2 box around each pixel; where under MIN_EVIDENCE of that box is seen by both
    (deep inside a wide hole), over a box WIDE times larger; where that too sees too little, 0 if
    the flow there moves less than STILL px (`motion`, full-resolution px) and otherwise a
    mismatch no threshold passes. Deep inside a hole the flow is completed from around it, and
    letting consistency alone decide there propagated flows that agree with each other but not
    with the scene (a subtitle bar over bikes: 26.9 dB on the propagated pixels; with this rule
    33.9); a still background behind a moving object, though, is filled right (static camera,
    moving object 10%: 31.5 dB in the mask, 27.1 when refused)."""
    seen, seen_wide = box_mean(both_seen, radius), box_mean(both_seen, WIDE * radius)
    near = 255.0 * box_mean(difference, radius) / seen.clamp(min=1e-6)
    wide = 255.0 * box_mean(difference, WIDE * radius) / seen_wide.clamp(min=1e-6)
    blind = torch.where(motion < STILL, torch.zeros_like(wide), torch.full_like(wide, NO_EVIDENCE))
    return torch.where(seen > MIN_EVIDENCE, near, torch.where(seen_wide > MIN_EVIDENCE, wide, blind))


def neighbour_order(frames: int) -> list[int]:
    """Indices of a window's frames other than its centre, nearest to the centre first (earlier
    first among equals)."""
    c = frames // 2
    return sorted((i for i in range(frames) if i != c), key=lambda i: (abs(i - c), i))


def sample_frames(frames: torch.Tensor, flow: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per pixel p, frame index(p) of (N, T, C, H, W) sampled (bilinear) at p + flow(p):
    flow (N, 2, H, W), index (N, 1, H, W) float. The window is read as one (1, T*C*H, W) image
    per batch item (a reshape, not a copy), one 4-D GridSample per channel (TensorRT takes 4-D
    GridSample only); p + flow(p) must lie inside the frame (`off_frame`), so no tap reaches a
    neighbouring frame or channel. Border padding by clamping (flow.py `grid_coordinate`)."""
    n, t, c, h, w = frames.shape
    rows = frames.reshape(n, 1, t * c * h, w)
    xs, ys = pixel_grid(flow)
    gx = grid_coordinate(xs + flow[:, 0], w)
    y = ys + flow[:, 1] + index[:, 0] * (c * h)
    return torch.cat([F.grid_sample(rows, torch.stack([gx, grid_coordinate(y + channel * h, t * c * h)], dim=-1),
                                    mode="bilinear", padding_mode="zeros", align_corners=False)
                      for channel in range(c)], dim=1)


@torch.no_grad()
def propagate_centre(
    frames: torch.Tensor,
    masks: torch.Tensor,
    max_flow_error: float = MAX_FLOW_ERROR,
    max_mismatch: float = MAX_MISMATCH,
    radius: int = AGREEMENT_RADIUS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill the centre frame's hidden pixels from the other frames where flow is trustworthy.

    frames: float (N, T, 3, H, W) RGB in [0, 1]; masks: float (N, T, 1, H, W), 1 = hidden.
    Returns (centre (N, 3, H, W), centre mask (N, 1, H, W)): the centre frame with the propagated
    pixels written in and cleared (0) from its mask; every other pixel unchanged. A window of one
    frame comes back unchanged. No gradient flows through it (a fixed pre-step).

    Flow and the consistency and agreement checks work at 1/STRIDE resolution, where the flow is
    estimated, and are resized to full resolution; whether the source pixel is visible is
    checked per pixel, and the chosen pixels are sampled from the full frames.
    """
    if frames.dim() != 5 or frames.shape[2] != 3 or masks.shape != (*frames.shape[:2], 1, *frames.shape[3:]):
        raise ValueError(f"propagate_centre: frames must be (N, T, 3, H, W) and masks (N, T, 1, H, W), "
                         f"got {tuple(frames.shape)} and {tuple(masks.shape)}")
    n, t, _, h, w = frames.shape
    c = t // 2
    centre, centre_mask = frames[:, c], masks[:, c]
    if t == 1:
        return centre, centre_mask
    order = neighbour_order(t)
    k = len(order)

    def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N*T, ...) -> the centre's repeated for each neighbour and the neighbours', (N*K, ...) each."""
        x = x.unflatten(0, (n, t))
        return x[:, c : c + 1].expand(-1, k, *x.shape[2:]).flatten(0, 1), x[:, order].flatten(0, 1)

    grey_small, colour, hidden = quarter_images(frames.flatten(0, 1), masks.flatten(0, 1))
    (grey_c, grey_o), (colour_c, colour_o), (hidden_c, hidden_o) = split(grey_small), split(colour), split(hidden)
    # Both directions in one call: centre -> neighbour (forward), neighbour -> centre (backward).
    flows = complete_flow(estimate_flow(torch.cat([grey_c, grey_o]), torch.cat([grey_o, grey_c])),
                          torch.cat([hidden_c, hidden_o]), torch.cat([hidden_o, hidden_c]))
    forward, backward = flows[: n * k], flows[n * k :]
    warped = warp(torch.cat([backward, colour_o, hidden_o], dim=1), forward)
    back, source, source_hidden = warped[:, :2], warped[:, 2:5], warped[:, 5:]
    error = STRIDE * (forward + back).square().sum(dim=1, keepdim=True).sqrt()
    both_seen = (1.0 - hidden_c) * (1.0 - source_hidden)
    difference = (source - colour_c).abs().mean(dim=1, keepdim=True) * both_seen
    mismatch = agreement(difference, both_seen, radius, STRIDE * forward.square().sum(dim=1, keepdim=True).sqrt())
    coarse = torch.cat([forward, error / STRIDE, mismatch / STRIDE], dim=1).unflatten(0, (n, k))
    todo = centre_mask > 0.5
    chosen, index = torch.zeros_like(centre[:, :2]), torch.zeros_like(centre_mask)
    grid = pixel_grid(centre_mask)
    # One neighbour at a time at full resolution, nearest first (a pixel taken from a nearer frame
    # is not overwritten): the full-size tensors of one neighbour are alive at once, not of all
    # T - 1 (at 1080p with 21 frames that was gigabytes in ONNX Runtime).
    for j, i in enumerate(order):
        full = full_resolution(coarse[:, j], h, w)
        flow = full[:, :2]
        # A source pixel next to its own frame's hole may be mixed with the hole by interpolation:
        # every bilinear tap of a sample that touches a hidden pixel lies in the 3x3-dilated mask.
        near_hole = F.max_pool2d(masks[:, i], 3, stride=1, padding=1)
        at = landing(flow, grid)
        source_hidden = sample(near_hole, at, mode="nearest") > 0.5
        take = todo & (full[:, 2:3] < max_flow_error) & (full[:, 3:] < max_mismatch) & ~off_frame(at) & ~source_hidden
        chosen = torch.where(take, flow, chosen)
        index = torch.where(take, float(i), index)
        todo = todo & ~take
    taken = (centre_mask > 0.5) & ~todo
    centre = torch.where(taken, sample_frames(frames, chosen, index), centre)
    return centre, todo.to(centre_mask.dtype)


def propagate_window(
    frames: torch.Tensor, masks: torch.Tensor, keep: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The centre `keep` frames of a longer (N, T, C, H, W) window, their centre frame filled by
    `propagate_centre` from all T frames: what the inpainting network's body is given."""
    t = frames.shape[1]
    if keep > t or keep % 2 == 0 or t % 2 == 0:
        raise ValueError(f"propagate_window: keep ({keep}) and the window ({t} frames) must be odd, keep <= window")
    centre, centre_mask = propagate_centre(frames, masks)
    lo, mid = t // 2 - keep // 2, t // 2
    # Concatenation rather than in-place writes: the exported graph stays free of ScatterND.
    out_frames = torch.cat([frames[:, lo:mid], centre.unsqueeze(1), frames[:, mid + 1 : lo + keep]], dim=1)
    out_masks = torch.cat([masks[:, lo:mid], centre_mask.unsqueeze(1), masks[:, mid + 1 : lo + keep]], dim=1)
    return out_frames, out_masks
