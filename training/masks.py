"""Inpainting masks: what the `inpaint` task trains and validates on, one generator per kind.

Every generator returns uint8 masks (T, H, W), 255 = pixel to fill (the contract's MASK), and
draws randomness only from the `rng` it is given: the same seed gives the same masks.

Kinds (sampled by `random_mask_window`; one or two of them, united):
  rectangles  the seed's random occlusions: axis-aligned boxes, sides 6..40 px.
  strokes     free-form brush strokes (DeepFill v2 style random walks of 3..8 segments of 8..32 px,
              width 3..15 px): scratches, scribbles and watermark-like text strokes.
  blobs       ellipses (semi-axes 4..20 px) moving on smooth trajectories (velocity up to 5 px/frame
              plus a little acceleration): moving objects to remove.
  text        burnt-in lettering (captions, timestamps, watermark text): short lines of letters,
              digits and punctuation in a random Hershey font, 8..32 px tall, strokes 1..3 px with
              an outline of 0..2 px; always static. Thin strokes over flat areas, where a diffusion
              fill (OpenCV, FFmpeg removelogo) is hard to beat.
Sizes are in pixels, not fractions of the frame, and the number of shapes (1..3 per 96x96 area;
text: 0.5..1.5 lines) grows with the frame, so 96-pixel training crops and full validation frames
see the same holes. Each shape is drawn once and then translated frame by frame along its own
trajectory; rectangles and strokes stay static half of the time (a watermark does not move), blobs
always move. So the network sees both cases: hidden pixels visible in neighbouring frames, and
hidden in all of them. Training draws from all four kinds; validation from the first three
(VALIDATION_KINDS), so held-out scores stay comparable with those recorded before text was added.

OVERLAYS are the masks users bring, each sized by the share of the frame it hides: a corner logo,
burnt-in subtitles and a timestamp (static), and a moving object (the robustness grid's cells,
benchmarks/robust_grid.py).
"""
from __future__ import annotations

import cv2
import numpy as np

FILL = 255


def _trajectory(frames: int, max_speed: float, rng: np.random.Generator) -> np.ndarray:
    """(T, 2) x/y offsets of a shape, zero at the centre frame: constant velocity plus a small
    acceleration, so motion is smooth as real object motion is over a few frames."""
    velocity = rng.uniform(-max_speed, max_speed, 2)
    accel = rng.uniform(-0.3, 0.3, 2)
    k = np.arange(frames, dtype=np.float64)[:, None] - frames // 2
    return velocity * k + 0.5 * accel * k**2


def _move(shape: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Translate a (H, W) mask by each of the (T, 2) offsets -> (T, H, W); parts that leave the
    frame are dropped. Nearest-neighbour keeps the mask binary."""
    h, w = shape.shape
    out = np.empty((len(offsets), h, w), np.uint8)
    for t, (dx, dy) in enumerate(offsets):
        m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        out[t] = cv2.warpAffine(shape, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    return out


def _maybe_static(frames: int, max_speed: float, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        return np.zeros((frames, 2))
    return _trajectory(frames, max_speed, rng)


def _static(shape: np.ndarray, frames: int) -> np.ndarray:
    return np.repeat(shape[None], frames, axis=0)


def _count(height: int, width: int, rng: np.random.Generator, low: float = 1, high: float = 3) -> int:
    """How many shapes: `low`..`high` per 96x96 of frame area (at least one)."""
    return max(1, round(rng.uniform(low, high) * height * width / 96**2))


def rectangles(frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Random boxes (sides 6..40 px), static or moving; uint8 (T, H, W)."""
    out = np.zeros((frames, height, width), np.uint8)
    for _ in range(_count(height, width, rng)):
        bh, bw = (min(int(rng.integers(6, 41)), side) for side in (height, width))
        y, x = int(rng.integers(0, height - bh + 1)), int(rng.integers(0, width - bw + 1))
        shape = np.zeros((height, width), np.uint8)
        shape[y : y + bh, x : x + bw] = FILL
        out |= _move(shape, _maybe_static(frames, 4.0, rng))
    return out


def strokes(frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Free-form brush strokes (random walks of 3..8 segments of 8..32 px, width 3..15 px),
    static or moving; uint8 (T, H, W)."""
    out = np.zeros((frames, height, width), np.uint8)
    for _ in range(_count(height, width, rng)):
        shape = np.zeros((height, width), np.uint8)
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        angle = rng.uniform(0, 2 * np.pi)
        thickness = int(rng.integers(3, 16))
        for _ in range(int(rng.integers(3, 9))):
            # Mostly keep heading, sometimes turn sharply: strokes look drawn, not like noise.
            angle += rng.normal(0, 0.8)
            length = rng.uniform(8, 32)
            nx = float(np.clip(x + length * np.cos(angle), 0, width - 1))
            ny = float(np.clip(y + length * np.sin(angle), 0, height - 1))
            cv2.line(shape, (int(x), int(y)), (int(nx), int(ny)), FILL, thickness)
            cv2.circle(shape, (int(nx), int(ny)), thickness // 2, FILL, -1)  # round joints
            x, y = nx, ny
        out |= _move(shape, _maybe_static(frames, 3.0, rng))
    return out


def blobs(frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Ellipses (semi-axes 4..20 px) moving smoothly; uint8 (T, H, W)."""
    out = np.zeros((frames, height, width), np.uint8)
    for _ in range(_count(height, width, rng)):
        shape = np.zeros((height, width), np.uint8)
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = tuple(int(rng.integers(4, 21)) for _ in range(2))
        cv2.ellipse(shape, centre, axes, rng.uniform(0, 180), 0, 360, FILL, -1)
        out |= _move(shape, _trajectory(frames, 5.0, rng))
    return out


FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL)
CHARACTERS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-/.,!? ")


def text(frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Burnt-in lettering: lines of 2..12 characters, 8..32 px tall, in a random font, stroke and
    outline, at random places; static; uint8 (T, H, W)."""
    shape = np.zeros((height, width), np.uint8)
    for _ in range(_count(height, width, rng, 0.5, 1.5)):
        font = FONTS[int(rng.integers(len(FONTS)))]
        stroke = int(rng.integers(1, 4)) + 2 * int(rng.integers(0, 3))  # the letters' stroke, outline included
        scale = cv2.getFontScaleFromHeight(font, int(rng.integers(8, 33)), stroke)
        line = "".join(rng.choice(CHARACTERS, int(rng.integers(2, 13))))
        (tw, th), _ = cv2.getTextSize(line, font, scale, stroke)
        x = int(rng.integers(-tw // 4, max(1, width - 3 * tw // 4)))
        y = int(rng.integers(th // 2, height + th // 2))
        cv2.putText(shape, line, (x, y), font, scale, FILL, stroke, cv2.LINE_8)
    return _static(shape, frames)


VALIDATION_KINDS = {"rectangles": rectangles, "strokes": strokes, "blobs": blobs}
KINDS = {**VALIDATION_KINDS, "text": text}


def random_mask_window(
    frames: int, height: int, width: int, rng: np.random.Generator, max_coverage: float = 0.5,
    kinds: dict = KINDS,
) -> np.ndarray:
    """Masks for one window: one or two of `kinds` united; uint8 (T, H, W), 255 = fill. Redrawn
    until the centre frame has something to fill and at most `max_coverage` of it is hidden."""
    names = list(kinds)
    while True:
        chosen = rng.choice(names, size=int(rng.integers(1, 3)), replace=False)
        out = np.zeros((frames, height, width), np.uint8)
        for name in chosen:
            out |= kinds[str(name)](frames, height, width, rng)
        coverage = np.count_nonzero(out[frames // 2]) / (height * width)
        if 0 < coverage <= max_coverage:
            return out


# ---- Static overlays and moving objects: the masks users bring (benchmarks/robust_grid.py) ----
# Each takes the hidden share of the frame, `coverage` (0.01..0.10), and returns uint8 (T, H, W).
# Overlays are drawn once and repeated in every frame: a burnt-in logo or caption never moves.

def corner_logo(frames: int, height: int, width: int, rng: np.random.Generator, coverage: float = 0.02) -> np.ndarray:
    """A broadcaster's logo: a rounded box (aspect 1.5..3) in a random corner, 3% of the frame in
    from its edges; static."""
    aspect = rng.uniform(1.5, 3.0)
    bh = max(2, round(np.sqrt(coverage * height * width / aspect)))
    bw = min(width - 2, round(bh * aspect))
    my, mx = max(1, round(0.03 * height)), max(1, round(0.03 * width))
    y = my if rng.random() < 0.5 else height - my - bh
    x = mx if rng.random() < 0.5 else width - mx - bw
    shape = np.zeros((height, width), np.uint8)
    r = max(1, bh // 4)  # rounded corners: a box drawn with thick rounded lines
    cv2.rectangle(shape, (x + r, y + r), (x + bw - 1 - r, y + bh - 1 - r), FILL, -1)
    cv2.rectangle(shape, (x + r, y + r), (x + bw - 1 - r, y + bh - 1 - r), FILL, 2 * r)
    return _static(shape, frames)


def _random_text(rng: np.random.Generator, words: int) -> str:
    letters = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return " ".join("".join(rng.choice(letters, int(rng.integers(2, 8)))) for _ in range(words))


def _fit_text(height: int, width: int, lines: list[str], band: float, coverage: float, anchor: str) -> np.ndarray:
    """Outlined text lines (as captions are drawn) scaled into a box that hides about `coverage`
    of the frame; the box is at most `band` of the frame wide (taller letters then) and sits at
    `anchor`: 'bottom' (centred, 5% up) or 'top-left' (3% in)."""
    scale, thickness = 1.0, 2
    (tw, th), base = cv2.getTextSize(max(lines, key=len), cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    line_h = th + base + 2 * thickness
    canvas = np.zeros((line_h * len(lines) + 8, tw + 8), np.uint8)
    for i, line in enumerate(lines):
        (lw, _), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.putText(canvas, line, ((canvas.shape[1] - lw) // 2, 4 + th + i * line_h), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, FILL, thickness + 2, cv2.LINE_8)  # +2: a 1-px outline around the strokes
    ys, xs = np.nonzero(canvas)
    canvas = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    area = coverage * height * width / (np.count_nonzero(canvas) / canvas.size)  # box area for `coverage`
    bw = min(round(np.sqrt(area * canvas.shape[1] / canvas.shape[0])), round(band * width))
    bh = min(round(area / bw), round(0.4 * height))
    box = cv2.resize(canvas, (bw, bh), interpolation=cv2.INTER_NEAREST)
    if anchor == "bottom":
        y, x = height - round(0.05 * height) - bh, (width - bw) // 2
    else:
        y, x = round(0.03 * height), round(0.03 * width)
    shape = np.zeros((height, width), np.uint8)
    shape[y : y + bh, x : x + bw] = box
    return shape


def subtitle_bar(frames: int, height: int, width: int, rng: np.random.Generator, coverage: float = 0.05) -> np.ndarray:
    """Burnt-in subtitles: one or two outlined text lines centred near the bottom; static."""
    lines = [_random_text(rng, int(rng.integers(3, 6))) for _ in range(int(rng.integers(1, 3)))]
    return _static(_fit_text(height, width, lines, 0.9, coverage, "bottom"), frames)


def timestamp(frames: int, height: int, width: int, rng: np.random.Generator, coverage: float = 0.01) -> np.ndarray:
    """A camera's date and time, top left; static (its digits change, its box does not matter:
    the mask covers the text as drawn on the first frame)."""
    month, day, hour, minute, second = (int(rng.integers(lo, hi)) for lo, hi in ((1, 13), (1, 29), (0, 24), (0, 60), (0, 60)))
    text = f"2026-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
    return _static(_fit_text(height, width, [text], 0.6, coverage, "top-left"), frames)


def moving_object(frames: int, height: int, width: int, rng: np.random.Generator, coverage: float = 0.03) -> np.ndarray:
    """An object to remove: an upright ellipse (a walker, 2..3 times as tall as wide) of `coverage`
    of the frame crossing it at 1..4 px per frame."""
    aspect = rng.uniform(2.0, 3.0)
    a = np.sqrt(coverage * height * width / (np.pi * aspect))  # half-width; half-height = aspect * a
    centre = (int(rng.uniform(0.25, 0.75) * width), int(rng.uniform(0.3, 0.7) * height))
    shape = np.zeros((height, width), np.uint8)
    cv2.ellipse(shape, centre, (max(1, round(a)), max(1, round(a * aspect))), 0, 0, 360, FILL, -1)
    speed = rng.uniform(1.0, 4.0) * (1 if rng.random() < 0.5 else -1)
    k = np.arange(frames, dtype=np.float64) - frames // 2
    return _move(shape, np.stack([speed * k, 0.2 * speed * k], axis=1))


OVERLAYS = {"corner_logo": corner_logo, "subtitle_bar": subtitle_bar, "timestamp": timestamp,
            "moving_object": moving_object}
