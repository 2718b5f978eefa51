"""Zoomed crops beside the robustness tables: what PSNR hides (stripes in dark flat areas, lost
texture, smeared hole fills).

One picture per row (robust.py pictures each task's stripe probe, robust_grid.PROBE_CELLS): a
line of tiles per area of the first window's clean centre frame (the
darkest flat area, the most textured one; inpaint also the most hidden one), a column per method
(clean, input or bicubic, best classical, ours...), each tile enlarged 4x with nearest neighbours
so single-pixel patterns stay visible.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from benchmarks.robust_grid import Sample

TILE, ZOOM, HEADER = 40, 4, 18


def areas(target: np.ndarray, mask: np.ndarray | None = None) -> dict[str, tuple[int, int]]:
    """Top-left corners of TILE x TILE areas (stride TILE/2) of the clean frame (H, W, 3): the
    darkest of the flattest quarter, the most textured (mean |Laplacian|), and with a mask
    (H, W) the most hidden."""
    grey = target.astype(np.float32).mean(axis=-1)
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    step = TILE // 2
    corners = [(y, x) for y in range(0, grey.shape[0] - TILE + 1, step) for x in range(0, grey.shape[1] - TILE + 1, step)]
    std = np.array([grey[y : y + TILE, x : x + TILE].std() for y, x in corners])
    mean = np.array([grey[y : y + TILE, x : x + TILE].mean() for y, x in corners])
    texture = np.array([lap[y : y + TILE, x : x + TILE].mean() for y, x in corners])
    flat = np.flatnonzero(std <= np.quantile(std, 0.25))
    out = {"dark flat": corners[flat[np.argmin(mean[flat])]], "textured": corners[int(np.argmax(texture))]}
    if mask is not None:
        hidden = np.array([np.count_nonzero(mask[y : y + TILE, x : x + TILE]) for y, x in corners])
        out["hidden"] = corners[int(np.argmax(hidden))]
    return out


def picture(samples: list[Sample], outputs: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 RGB picture: rows = areas, columns = clean then every method of `outputs`, labelled."""
    target = samples[0].target
    mask = None if samples[0].masks is None else samples[0].masks[len(samples[0].masks) // 2, ..., 0]
    columns = {"clean": target, **{name: frames[0] for name, frames in outputs.items()}}
    side = TILE * ZOOM
    lines = []
    for area, (y, x) in areas(target, mask).items():
        tiles = [cv2.resize(np.ascontiguousarray(img[y : y + TILE, x : x + TILE]), (side, side),
                            interpolation=cv2.INTER_NEAREST) for img in columns.values()]
        header = np.full((HEADER, side * len(tiles), 3), 255, np.uint8)
        for i, name in enumerate(columns):
            label = f"{area}: {name}" if i == 0 else name
            cv2.putText(header, label[: side // 7], (i * side + 3, HEADER - 5), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, (0, 0, 0), 1, cv2.LINE_AA)
        lines += [header, np.concatenate(tiles, axis=1)]
    return np.concatenate(lines, axis=0)


def write_picture(path: Path, samples: list[Sample], outputs: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture(samples, outputs)[..., ::-1]):
        raise RuntimeError(f"could not write {path}")
    return path
