"""Classical baselines through the `ffmpeg` command-line tool (Debian's package): the filters a user
would run instead of our networks, each over a small grid of settings.

One ffmpeg process per window runs every setting at once (`split` into one filter chain per setting,
each written to its own raw file), because starting ffmpeg costs more than filtering a small window.
Frames go in as raw rgb24 on stdin and come back as raw rgb24; each chain works in planar RGB
(`gbrp`), so no colour conversion or chroma subsampling touches the pixels but the filter's own.

    filters = denoise_settings()                       # name -> ffmpeg filter string
    outputs = run_filters(window, list(filters.values()))   # one (T, H', W', 3) array per setting
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

FFMPEG = "ffmpeg"


def ffmpeg_path() -> str:
    """The ffmpeg binary, or a FileNotFoundError saying how to install it."""
    path = shutil.which(FFMPEG)
    if path is None:
        raise FileNotFoundError("ffmpeg is not on PATH: install Debian's package (apt-get install -y ffmpeg)")
    return path


def run_filters(frames: np.ndarray, filters: list[str], scale: int = 1, timeout: float = 300.0) -> list[np.ndarray]:
    """Run each ffmpeg filter chain of `filters` over the uint8 RGB frames (T, H, W, 3) (in this
    order, so temporal filters see the neighbours) -> one uint8 (T, H*scale, W*scale, 3) per chain."""
    t, h, w, _ = frames.shape
    n = len(filters)
    with tempfile.TemporaryDirectory(prefix="ffmpeg_filters_") as tmp:
        outs = [Path(tmp) / f"{i}.rgb" for i in range(n)]
        graph = f"[0:v]format=gbrp,split={n}" + "".join(f"[s{i}]" for i in range(n)) + ";"
        graph += ";".join(f"[s{i}]{f},format=gbrp[o{i}]" for i, f in enumerate(filters))
        cmd = [ffmpeg_path(), "-nostdin", "-v", "error", "-xerror", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", "25", "-i", "pipe:0", "-filter_complex", graph]
        for i, out in enumerate(outs):
            cmd += ["-map", f"[o{i}]", "-f", "rawvideo", "-pix_fmt", "rgb24", str(out)]
        proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({proc.returncode}) on {t} frames {w}x{h} with {filters}: "
                               f"{proc.stderr.decode(errors='replace')[-800:]}")
        results = []
        for f, out in zip(filters, outs):
            data = np.frombuffer(out.read_bytes(), np.uint8)
            shape = (t, h * scale, w * scale, 3)
            if data.size != np.prod(shape):
                raise RuntimeError(f"ffmpeg filter {f!r} returned {data.size} bytes for {t} frames {w}x{h}, "
                                   f"expected {int(np.prod(shape))}")
            results.append(data.reshape(shape))
    return results


# ---- the setting grids (name -> filter chain); the benchmark keeps the best against the clean frames ----

def denoise_settings() -> dict[str, str]:
    """hqdn3d (spatial and temporal strength), nlmeans (strength s), fftdnoiz (sigma; its temporal
    mode costs 10x, so spatial only) and deblock (block edges of compressed video)."""
    settings = {}
    for s in (1, 2, 4, 8, 16):
        settings[f"hqdn3d {s}"] = f"hqdn3d={s}:{s}:{1.5 * s:g}:{1.5 * s:g}"
    for s in (2, 4, 8, 16):
        settings[f"nlmeans s={s}"] = f"nlmeans=s={s}:p=7:r=9"
    for s in (3, 6, 12, 24, 48):
        settings[f"fftdnoiz sigma={s}"] = f"fftdnoiz=sigma={s}"
    for kind in ("weak", "strong"):
        settings[f"deblock {kind}"] = f"deblock=filter={kind}:block=8"
    return settings


def deblur_settings() -> dict[str, str]:
    """unsharp over kernel size x amount (the same on all three planes)."""
    return {f"unsharp {k}x{k} {a:g}": f"unsharp={k}:{k}:{a:g}:{k}:{k}:{a:g}" for k in (5, 9, 13) for a in (0.5, 1.0, 2.0)}


def upscale_settings(scale: int = 4) -> dict[str, str]:
    """FFmpeg's scaler (swscale) x`scale` with its bicubic, Lanczos and spline kernels."""
    return {f"ffmpeg {k} x{scale}": f"scale=iw*{scale}:ih*{scale}:flags={k}" for k in ("bicubic", "lanczos", "spline")}


def removelogo(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """FFmpeg removelogo over the frames with one static mask (H, W), non-zero = logo."""
    with tempfile.TemporaryDirectory(prefix="removelogo_") as tmp:
        path = Path(tmp) / "mask.png"
        cv2.imwrite(str(path), np.where(mask != 0, 255, 0).astype(np.uint8))
        return run_filters(frames, [f"removelogo=f={path}"])[0]
