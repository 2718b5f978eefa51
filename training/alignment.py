"""Motion compensation of a window: every neighbour frame warped onto the centre frame by dense
optical flow (OpenCV's DIS), so the network fuses pixels that show the same point of the scene.

Without it the network must find moving content itself within its receptive field; on fast
footage (the held-out bikes clip moves up to ~15 px per frame) the neighbours then add little.

One definition for training (training/data.py aligns every sample), evaluation
(training/evaluate.py) and serving: the window model aligns each window before the network when
its config says `align` (`make engine` copies this file to model_repository/<task>_window/1/).
NumPy and OpenCV only, no torch, so the Triton Python backend imports it as it is.
"""
from __future__ import annotations

import cv2
import numpy as np

# Flow is estimated on grey frames smoothed by this Gaussian (pixels): noise up to sigma 50
# otherwise drives DIS's patch matching.
SMOOTH_SIGMA = 1.5
# Below this side DIS's pyramid has nothing to work with: the window is left as it is.
MIN_SIDE = 32
HIDDEN = 255


def _flow_image(frame: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Grey, smoothed uint8 (H, W) for flow estimation; hidden pixels filled from their
    surroundings (normalised convolution) so holes do not look like moving edges."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    if mask is not None and mask.any():
        known = (mask[..., 0] == 0).astype(np.float32)
        sigma = max(grey.shape) / 16
        fill = cv2.GaussianBlur(grey * known, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(known, (0, 0), sigma), 1e-3)
        grey = np.where(known > 0, grey, fill)
    return np.clip(cv2.GaussianBlur(grey, (0, 0), SMOOTH_SIGMA), 0, 255).astype(np.uint8)


def align_window(frames: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp each neighbour of the centre frame onto it.

    frames: uint8 (T, H, W, 3) RGB; masks: uint8 (T, H, W, 1), 255 = hidden (inpaint), or None.
    Returns (frames, masks) of the same shapes: the centre unchanged; neighbour t sampled at
    x + flow_t(x), where flow_t maps the centre onto frame t. Warped masks use the nearest pixel,
    and pixels whose source lies outside the frame count as hidden (the network must not trust
    them). Frames smaller than MIN_SIDE come back unchanged.
    """
    t, h, w, _ = frames.shape
    if min(h, w) < MIN_SIDE or t == 1:
        return frames, masks
    centre = t // 2
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    greys = [_flow_image(frames[i], None if masks is None else masks[i]) for i in range(t)]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out_frames = frames.copy()
    out_masks = None if masks is None else masks.copy()
    for i in range(t):
        if i == centre:
            continue
        flow = dis.calc(greys[centre], greys[i], None)
        map_x, map_y = gx + flow[..., 0], gy + flow[..., 1]
        out_frames[i] = cv2.remap(frames[i], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if out_masks is not None:
            outside = (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)
            warped = cv2.remap(masks[i, ..., 0], map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=HIDDEN)
            out_masks[i, ..., 0] = np.where(outside, HIDDEN, warped)
    return out_frames, out_masks
