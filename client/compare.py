"""`restore --compare OUT`: a split-screen video, the input on the left half and the restored
frame on the right, divided by a thin line, so a viewer sees the difference on the same picture.
An upscaling task's input is enlarged by pixel repetition (what the source really holds)."""
from __future__ import annotations

import numpy as np

DIVIDER = 2  # pixels of the white line between the halves


def split_screen(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """RGB frame the size of `after`: `before` (enlarged to it) left of the centre, `after` right."""
    scale = after.shape[0] // before.shape[0]
    if before.shape[0] * scale != after.shape[0] or before.shape[1] * scale != after.shape[1]:
        raise ValueError(f"restored frame {after.shape} is not an integer scale of the input {before.shape}")
    if scale > 1:
        before = before.repeat(scale, axis=0).repeat(scale, axis=1)
    out = after.copy()
    middle = after.shape[1] // 2
    out[:, :middle] = before[:, :middle]
    out[:, max(0, middle - DIVIDER // 2) : middle + DIVIDER - DIVIDER // 2] = 255
    return out
