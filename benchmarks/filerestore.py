"""The full client file restore as a user runs it: `restore IN -o OUT.mp4` (decode -> gRPC stream
-> re-order -> H.264 encode), timed in this process so interpreter start-up is not counted, on a
lossless file holding exactly the benchmark's frames.

`python -m benchmarks.filerestore` measures just that, side by side with in-process ONNX Runtime
over the same frames, in rounds (a few minutes, where `make bench` takes fifteen): the client's
default encode (x264 veryfast, CRF 16) and, for reference, the former one (medium, CRF 18)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from statistics import median

import numpy as np

from benchmarks.demo import read_frames, write_lossless
from benchmarks.frames import load_frames, parse_size
from benchmarks.inprocess import onnxruntime_result
from benchmarks.measure import Result, markdown_table, resolution_name, with_cpu
from benchmarks.procstat import CpuMeter, machine
from benchmarks.repository import prepare_repository
from client.local_server import TritonServer
from client.restore import main as restore_main


def write_input(path: Path, frames: list[np.ndarray], rate: float = 24.0) -> Path:
    """The benchmark frames as an FFV1 .mkv (lossless, cheap to decode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_lossless(path, frames, rate)
    return path


def file_restore_result(url: str, task: str, source: Path, output: Path, frame_count: int,
                        server_pid: int | None, extra_args: tuple[str, ...] = (),
                        config: str = "client file restore (decode+stream+encode .mp4)") -> Result:
    """Frames/s of one client restore of `source`; raises RuntimeError if it fails or the output
    does not have `frame_count` frames. Per-frame latency is not observable from outside the
    client, so p50/p99 are NaN (the served-stream rows carry it)."""
    output.unlink(missing_ok=True)
    with CpuMeter(server_pid) as cpu:
        start = time.perf_counter()
        status = restore_main([str(source), "-o", str(output), "--task", task, "--url", url, "-q", *extra_args])
        seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"client.restore exited with {status}")
    restored, _ = read_frames(output)
    if len(restored) != frame_count:
        raise RuntimeError(f"{output} has {len(restored)} frames, expected {frame_count}")
    return with_cpu(Result(config, 1, resolution_name(restored[0]),
                           frame_count, frame_count / seconds, float("nan"), float("nan")), cpu.use)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.filerestore", description=__doc__)
    p.add_argument("--task", default="denoise")
    p.add_argument("--size", type=parse_size, default=(640, 360), help="frame size (default 640x360)")
    p.add_argument("--frames", type=int, default=132, help="frames of the clip (default 132, all of it)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path("build") / "bench-file")
    args = p.parse_args(argv)
    frames = load_frames(args.size, args.frames)
    repository = prepare_repository(args.workdir / "repository", args.task)
    source = write_input(args.workdir / "clip.mkv", frames)
    configs = {"client file restore, veryfast CRF 16 (default)": (),
               "client file restore, medium CRF 18 (former default)": ("--preset", "medium", "--crf", "18")}
    results, ratios = [], {name: [] for name in configs}
    with TritonServer(repository, args.workdir / "server.log") as server:
        for round_ in range(args.rounds):
            ort = onnxruntime_result(repository, args.task, frames)
            results.append(ort)
            for name, extra in configs.items():
                r = file_restore_result(server.grpc_url, args.task, source, args.workdir / "restored.mp4", len(frames),
                                        server.process.pid, extra, name)
                results.append(r)
                ratios[name].append(r.fps / ort.fps)
            print(f"round {round_ + 1}: ORT {ort.fps:.2f} frames/s; " +
                  "; ".join(f"{n}: {v[-1]:.2f}" for n, v in ratios.items()), flush=True)
    print(f"machine: {machine()}")
    print(markdown_table(results, results[0]))
    for name, values in ratios.items():
        print(f"- {name} / in-process ONNX Runtime: median {median(values):.2f} "
              f"(per round: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
