"""A before/after picture of one restored frame: both full frames side by side, then zoomed crops
of a dark flat area (where noise and banding show) and of the most textured area (where blur and
over-smoothing show), before and after. Used by `make demo` and `make pictures`.

Pure NumPy/OpenCV on RGB uint8 frames; crops are chosen on the reference (clean) frame when there
is one, so the same places are shown whatever the input looks like.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.evaluate import masked_psnr, psnr

BACKGROUND = (32, 32, 32)
TEXT = (235, 235, 235)
# Rectangle colours on the full frames, one per crop (RGB).
CROP_COLOURS = ((255, 210, 0), (0, 200, 255))
LABEL_HEIGHT = 22


@dataclass(frozen=True)
class Crop:
    """A size x size square at (y, x) of the full frame."""

    name: str
    y: int
    x: int
    size: int

    def of(self, image: np.ndarray) -> np.ndarray:
        return image[self.y : self.y + self.size, self.x : self.x + self.size]


def local_stats(image: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation of luma over every size x size square whose top-left corner is
    on a `stride` grid: (ys, xs, means, stds), one entry per square."""
    luma = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.boxFilter(luma, -1, (size, size), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    mean_sq = cv2.boxFilter(luma * luma, -1, (size, size), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    h, w = luma.shape
    ys, xs = np.meshgrid(np.arange(0, h - size + 1, stride), np.arange(0, w - size + 1, stride), indexing="ij")
    ys, xs = ys.ravel(), xs.ravel()
    m = mean[ys, xs]
    std = np.sqrt(np.maximum(mean_sq[ys, xs] - m * m, 0.0))
    return ys, xs, m, std


def choose_crops(reference: np.ndarray, size: int) -> tuple[Crop, Crop]:
    """(dark flat, textured) squares of `reference`. Dark flat: the smoothest square among the
    darker 40% that are not clipped black (noise hides in clipped pixels); textured: the square
    with the most luma variation that does not overlap the first."""
    if reference.ndim != 3 or reference.shape[2] != 3:
        raise ValueError(f"reference frame must be (H, W, 3), got {reference.shape}")
    size = min(size, *reference.shape[:2])
    ys, xs, mean, std = local_stats(reference, size, max(1, size // 4))
    dark = (mean <= np.quantile(mean, 0.4)) & (mean >= 16)
    if not dark.any():
        dark = mean <= np.quantile(mean, 0.4)
    flat = np.flatnonzero(dark)[np.argmin(std[dark])]
    apart = (np.abs(ys - ys[flat]) >= size) | (np.abs(xs - xs[flat]) >= size)
    if not apart.any():  # a frame too small for two disjoint squares: show the same place twice
        apart[:] = True
    textured = np.flatnonzero(apart)[np.argmax(std[apart])]
    return (Crop("dark flat area", int(ys[flat]), int(xs[flat]), size),
            Crop("textured area", int(ys[textured]), int(xs[textured]), size))


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """`image` under a strip with `text`."""
    strip = np.empty((LABEL_HEIGHT, image.shape[1], 3), np.uint8)
    strip[:] = BACKGROUND
    cv2.putText(strip, text, (6, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT, 1, cv2.LINE_AA)
    return np.vstack([strip, image])


def row(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Panels of equal height side by side with a gap between them."""
    spacer = np.empty((panels[0].shape[0], gap, 3), np.uint8)
    spacer[:] = BACKGROUND
    out = [panels[0]]
    for p in panels[1:]:
        out += [spacer, p]
    return np.hstack(out)


def stack_rows(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Rows on top of each other, each centred on the widest."""
    width = max(r.shape[1] for r in rows)
    out = []
    for i, r in enumerate(rows):
        padded = np.empty((r.shape[0] + (gap if i else 0), width, 3), np.uint8)
        padded[:] = BACKGROUND
        left = (width - r.shape[1]) // 2
        padded[padded.shape[0] - r.shape[0]:, left : left + r.shape[1]] = r
        out.append(padded)
    return np.vstack(out)


def before_after(before: np.ndarray, after: np.ndarray, reference: np.ndarray | None = None,
                 labels: tuple[str, str] = ("input", "restored"), width: int = 400,
                 crop: int = 64, zoom: int = 3, crops: tuple[Crop, ...] | None = None,
                 mask: np.ndarray | None = None) -> np.ndarray:
    """The picture (RGB uint8): full frames `before` | `after` scaled to `width` each, with the
    crops outlined; below, each crop before | after, enlarged `zoom` times with nearest-neighbour
    so single pixels stay visible. Crops: `crops`, else choose_crops(). With a `reference` (the
    clean frame), labels carry PSNR against it, only inside `mask` (H, W, 1) when given."""
    if before.shape != after.shape or before.ndim != 3 or before.shape[2] != 3:
        raise ValueError(f"before {before.shape} and after {after.shape} must be the same (H, W, 3) shape")
    if reference is not None and reference.shape != after.shape:
        raise ValueError(f"reference {reference.shape} must have the after frame's shape {after.shape}")
    crops = crops or choose_crops(after if reference is None else reference, crop)
    if reference is not None:
        score = (lambda a: psnr(a, reference)) if mask is None else (lambda a: masked_psnr(a, reference, mask))
        where = "" if mask is None else " in the mask"
        labels = tuple(f"{label}: {score(image):.2f} dB{where}" for label, image in zip(labels, (before, after)))

    h, w = after.shape[:2]
    scale = min(1.0, width / w)
    full = []
    for image, label in zip((before, after), labels):
        shown = image if scale == 1.0 else cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        shown = np.ascontiguousarray(shown)
        for c, colour in zip(crops, CROP_COLOURS):
            top_left = (round(c.x * scale), round(c.y * scale))
            bottom_right = (round((c.x + c.size) * scale) - 1, round((c.y + c.size) * scale) - 1)
            cv2.rectangle(shown, top_left, bottom_right, colour, 1)
        full.append(labelled(shown, label))

    zoomed = []
    for c in crops:
        for image, label in zip((before, after), labels):
            enlarged = np.repeat(np.repeat(c.of(image), zoom, axis=0), zoom, axis=1)
            zoomed.append(labelled(enlarged, f"{label.split(':')[0]}, {c.name}"))
    return stack_rows([row(full), row(zoomed)])


def write_png(path: Path, picture: np.ndarray) -> Path:
    """Write an RGB picture as PNG (maximum compression), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")
    return path
