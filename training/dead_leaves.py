"""Synthetic training stills: the dead-leaves model (opaque shapes of power-law sizes stacked on
one another), some shapes filled with fine texture.

Two clips and a dozen photographs are too little content to generalise from: longer runs fit
them. Dead-leaves images have edges at every scale and orientation, occlusions, flat areas and
(with the textured fills: stripes like fabric, band-limited noise like gravel or foliage) the fine
detail a restorer must keep rather than smooth away, and no two are alike. Drawn at twice the
size and area-averaged, so edges are antialiased as in a camera's image.
"""
from __future__ import annotations

import cv2
import numpy as np

SUPERSAMPLE = 2
MIN_RADIUS = 1.5  # output pixels
TEXTURES = 4  # textured fills per image: 2 stripe patterns, 2 band-limited noises


def leaf_radii(count: int, max_radius: float, rng: np.random.Generator) -> np.ndarray:
    """`count` radii with density proportional to r^-3 on [MIN_RADIUS, max_radius] (scale
    invariant: as many edges per octave of size)."""
    lo, hi = MIN_RADIUS ** -2, max_radius ** -2
    return (lo - rng.random(count) * (lo - hi)) ** -0.5


def textures(size: int, rng: np.random.Generator) -> np.ndarray:
    """(TEXTURES, size, size) float32 zero-mean patterns of amplitude about 1."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = np.empty((TEXTURES, size, size), np.float32)
    for k in range(2):  # stripes: period 2.5-12 supersampled px, any orientation
        angle, period = rng.uniform(0, np.pi), rng.uniform(2.5, 12) * SUPERSAMPLE
        out[k] = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    for k in range(2, TEXTURES):  # noise blurred to a random grain of 0.5-3 output px
        noise = rng.standard_normal((size, size)).astype(np.float32)
        grain = rng.uniform(0.5, 3) * SUPERSAMPLE
        noise = cv2.GaussianBlur(noise, (0, 0), grain)
        out[k] = noise / (noise.std() + 1e-6)
    return out


def dead_leaves(size: int, rng: np.random.Generator, shapes: int | None = None) -> np.ndarray:
    """A uint8 RGB (size, size, 3) dead-leaves image: about `shapes` (default: enough to cover
    it) discs and rotated rectangles, each a flat colour or a colour modulated by one of the
    image's textures."""
    big = size * SUPERSAMPLE
    count = shapes if shapes is not None else 8 * size
    radii = leaf_radii(count, size / 4, rng) * SUPERSAMPLE
    labels = np.zeros((big, big), np.int32)
    for index, (radius, cy, cx) in enumerate(zip(radii, rng.uniform(0, big, count), rng.uniform(0, big, count)), 1):
        if rng.random() < 0.6:
            cv2.circle(labels, (int(cx), int(cy)), max(int(radius), 1), index, -1)
        else:
            box = ((float(cx), float(cy)), (float(radius * 2), float(radius * rng.uniform(0.3, 2))), float(rng.uniform(0, 180)))
            cv2.fillPoly(labels, [cv2.boxPoints(box).astype(np.int32)], index)
    # Grey levels spread over the whole range, chroma mostly small (as in natural scenes);
    # label 0 is the background, coloured and textured like any leaf.
    colours = (rng.uniform(0, 255, (count + 1, 1)) + rng.normal(0, 25, (count + 1, 3))).astype(np.float32)
    texture_of = rng.integers(-TEXTURES, TEXTURES, count + 1)  # negative: a flat fill
    amplitude = rng.uniform(10, 60, count + 1).astype(np.float32) * (texture_of >= 0)
    pattern = textures(big, rng)
    modulation = pattern[np.maximum(texture_of, 0)[labels], np.arange(big)[:, None], np.arange(big)[None, :]]
    image = colours[labels] + (amplitude[labels] * modulation)[..., None]
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
