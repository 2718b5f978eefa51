"""Flow-guided propagation for inpainting: fill the centre frame's hidden pixels with what a
farther frame of the stream shows there, before the network inpaints the rest.

Video inpainting beats single-image inpainting because a pixel hidden now is often visible a few
frames earlier or later (the mask moved, or the camera did). The network sees only T frames and
finds moving content only within its receptive field; this step looks over a longer window and
copies a pixel from another frame only where three checks agree that it shows the same point:

  flow        dense optical flow (OpenCV DIS) from the centre frame to each other frame, on grey
              frames whose hidden pixels are filled first (Telea: smooth fills give DIS the least
              false motion of the fills we tried);
  consistency the flow there and back returns to within `max_flow_error` px of where it started
              (occlusions and flow dragged across the hole fail this);
  agreement   around the pixel, the warped frame matches the centre frame on the pixels both show
              (mean absolute difference below `max_mismatch` grey levels over a
              (2 * radius + 1)^2 box): a wrong flow, a scene cut or a lighting change fails this.
The source pixel must itself be visible in its frame (not within 1 px of its frame's mask). The
nearest frame in time that passes wins. What passes is written into the centre frame and removed
from its mask, so the network gets smaller holes with more known pixels around them.

One definition for evaluation (training/evaluate.py `network_planes`) and serving: the inpaint
window model runs it on each window when its config says `propagate` (`make engine` copies this
file to model_repository/<task>_window/1/). NumPy and OpenCV only, no torch.
"""
from __future__ import annotations

import cv2
import numpy as np

MIN_SIDE = 32              # below this DIS has no pyramid to work with: nothing is propagated
MAX_FLOW_ERROR = 0.5       # px, forward-backward consistency
MAX_MISMATCH = 10.0        # grey levels, mean |warped - centre| on the known pixels around
AGREEMENT_RADIUS = 7       # px, half-side of the box that agreement is measured over
FILL_RADIUS = 3            # px, Telea's neighbourhood when filling holes for flow estimation


def flow_image(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey uint8 (H, W) of one frame for flow estimation: its hidden pixels (mask (H, W, 1),
    non-zero = hidden) filled by OpenCV's Telea inpainting, so a hole does not look like a moving
    edge, then smoothed (sigma 1). One per frame: the window model computes it as a frame arrives."""
    if frame.ndim != 3 or frame.shape[-1] != 3 or mask.shape != (*frame.shape[:2], 1):
        raise ValueError(f"flow_image: frame must be (H, W, 3) and its mask (H, W, 1), got {frame.shape} and {mask.shape}")
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    hidden = mask[..., 0] != 0
    if hidden.any() and min(grey.shape) >= MIN_SIDE:
        grey = cv2.inpaint(grey, hidden.astype(np.uint8), FILL_RADIUS, cv2.INPAINT_TELEA)
    return cv2.GaussianBlur(grey, (0, 0), 1.0)


def propagate_centre(
    frames: np.ndarray,
    masks: np.ndarray,
    greys: np.ndarray | None = None,
    max_flow_error: float = MAX_FLOW_ERROR,
    max_mismatch: float = MAX_MISMATCH,
    radius: int = AGREEMENT_RADIUS,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the centre frame's hidden pixels from the other frames where flow is trustworthy.

    frames: uint8 (T, H, W, 3) RGB; masks: uint8 (T, H, W, 1), non-zero = hidden (255 = fill);
    greys: their `flow_image`s (T, H, W) if already made (computed here otherwise).
    Returns (centre uint8 (H, W, 3), centre mask uint8 (H, W, 1)): the centre frame with the
    propagated pixels written in and cleared (0) from its mask; every other pixel unchanged. Frames
    smaller than MIN_SIDE, or a window of one frame, come back unchanged.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or masks.shape != (*frames.shape[:3], 1):
        raise ValueError(f"propagate_centre: frames must be (T, H, W, 3) and masks (T, H, W, 1), "
                         f"got {frames.shape} and {masks.shape}")
    t, h, w, _ = frames.shape
    c = t // 2
    centre, centre_mask = frames[c].copy(), masks[c].copy()
    hidden = masks[..., 0] != 0
    todo = hidden[c].copy()
    if t == 1 or min(h, w) < MIN_SIDE or not todo.any():
        return centre, centre_mask
    if greys is None:
        greys = np.stack([flow_image(f, m) for f, m in zip(frames, masks)])
    elif greys.shape != frames.shape[:3]:
        raise ValueError(f"propagate_centre: greys must be (T, H, W) = {frames.shape[:3]}, got {greys.shape}")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    box = (2 * radius + 1, 2 * radius + 1)
    centre_f = frames[c].astype(np.float32)
    for i in sorted((i for i in range(t) if i != c), key=lambda i: (abs(i - c), i)):
        forward = dis.calc(greys[c], greys[i], None)
        backward = dis.calc(greys[i], greys[c], None)
        map_x, map_y = gx + forward[..., 0], gy + forward[..., 1]
        back = cv2.remap(backward, map_x, map_y, cv2.INTER_LINEAR)
        consistent = np.hypot(forward[..., 0] + back[..., 0], forward[..., 1] + back[..., 1]) < max_flow_error
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        # A source pixel next to its own frame's hole may be mixed with the hole by interpolation.
        near_hole = cv2.dilate(hidden[i].astype(np.uint8), np.ones((3, 3), np.uint8))
        source_hidden = cv2.remap(near_hole, map_x, map_y, cv2.INTER_NEAREST, borderValue=1) != 0
        warped = cv2.remap(frames[i], map_x, map_y, cv2.INTER_LINEAR)
        both_seen = (~hidden[c] & ~source_hidden).astype(np.float32)
        difference = np.abs(warped.astype(np.float32) - centre_f).mean(axis=-1) * both_seen
        # Deep inside a wide hole nothing is seen by both: consistency alone decides there
        # (measured: such pixels still propagate better than the network fills them).
        mismatch = cv2.boxFilter(difference, -1, box, normalize=False) / np.maximum(
            cv2.boxFilter(both_seen, -1, box, normalize=False), 1e-3)
        take = todo & consistent & inside & ~source_hidden & (mismatch < max_mismatch)
        centre[take] = warped[take]
        todo &= ~take
        if not todo.any():
            break
    centre_mask[..., 0] = np.where(todo, centre_mask[..., 0], 0)
    return centre, centre_mask


def propagate_window(
    frames: np.ndarray, masks: np.ndarray, keep: int, greys: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The centre `keep` frames of a longer (T, H, W, *) window, their centre frame filled by
    `propagate_centre` from all T frames: what the inpainting network (T = `keep`) is given."""
    t = len(frames)
    if keep > t or keep % 2 == 0 or t % 2 == 0:
        raise ValueError(f"propagate_window: keep ({keep}) and the window ({t} frames) must be odd, keep <= window")
    centre, centre_mask = propagate_centre(frames, masks, greys)
    lo = t // 2 - keep // 2
    out_frames, out_masks = frames[lo : lo + keep].copy(), masks[lo : lo + keep].copy()
    out_frames[keep // 2], out_masks[keep // 2] = centre, centre_mask
    return out_frames, out_masks
