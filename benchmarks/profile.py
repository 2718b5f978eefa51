"""Where the time goes: stream real 640x360 frames through the served ensemble
while py-spy samples the window model's and the network's Python stubs, then print

  - Triton's own per-model breakdown (queue, compute input / infer / output per request, and
    the average batch size the dynamic batcher formed), and
  - the top functions of each stub by CPU samples (self and inclusive).

    .venv/bin/pip install py-spy      # a profiling tool, not a project dependency
    python -m benchmarks.profile --streams 1 --frames 132

Without py-spy only the Triton breakdown is printed. The client side is profiled the same way
with `py-spy record -f raw -o client.txt -- python -m client.restore ...` and `top_functions`.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from benchmarks.frames import load_frames, parse_size
from benchmarks.procstat import process_tree
from benchmarks.repository import prepare_repository
from benchmarks.stream import run_streams
from client.local_server import ADMIN_HEADER, TritonServer
from training.contract import get_task

ROOT = Path(__file__).resolve().parents[1]


def top_functions(raw: Path, count: int = 8) -> list[str]:
    """Lines "self% inclusive% function" from a py-spy raw (collapsed stacks) file, by self time."""
    own, inclusive, total = Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames, n = stack.split(";"), int(samples)
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    return [f"{100 * n / total:5.1f}% self {100 * inclusive[f] / total:5.1f}% incl  {f}"
            for f, n in own.most_common(count)] + [f"({total} samples)"]


def stub_pids(server_pid: int, models: list[str]) -> dict[str, int]:
    """Python-backend stub process of each model (its command line names the model's folder)."""
    found = {}
    for pid in process_tree(server_pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        for model in models:
            if "stub" in cmd and f"/{model}/" in cmd:
                found[model] = pid
    return found


def triton_breakdown(server: TritonServer, models: list[str]) -> list[str]:
    """Per model: requests, executions (batches), and mean ms per request of each phase."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_url)
    headers = {f"triton-grpc-protocol-{ADMIN_HEADER}": server.admin_key}
    lines = []
    for model in models:
        stats = client.get_inference_statistics(model, headers=headers, as_json=True)["model_stats"][0]
        infer = stats["inference_stats"]
        n = int(infer["success"]["count"]) or 1
        ms = {k: int(infer[k]["ns"]) / n / 1e6 for k in ("queue", "compute_input", "compute_infer", "compute_output")}
        executions = int(stats.get("execution_count", 0)) or 1
        lines.append(f"{model}: {n} requests in {executions} executions (mean batch {int(stats.get('inference_count', n)) / executions:.2f}); "
                     + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()))
    client.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="denoise", help="served task (default: denoise)")
    parser.add_argument("--streams", type=int, default=1, help="concurrent streams (default: 1)")
    parser.add_argument("--frames", type=int, default=132, help="frames per stream (default: 132)")
    parser.add_argument("--size", default="360p", help="frame size, 360p or WxH (default: 360p)")
    parser.add_argument("--repository", type=Path, help="an already-built repository to copy (default: export the checkpoint)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "profile", help="scratch folder (default: build/profile)")
    args = parser.parse_args(argv)
    spec = get_task(args.task)
    models = [spec.name, spec.window_model, spec.net_model]
    frames = load_frames(parse_size(args.size), args.frames)
    repository = prepare_repository(args.workdir / "repository", args.task, args.repository)
    py_spy = shutil.which("py-spy") or (str(Path(sys.prefix) / "bin" / "py-spy") if (Path(sys.prefix) / "bin" / "py-spy").exists() else None)
    with TritonServer(repository, args.workdir / "tritonserver.log") as server:
        run_streams(server.grpc_url, args.task, [frames[:10]] * args.streams)  # warm-up, not profiled
        recorders = {}
        if py_spy:
            for model, pid in stub_pids(server.process.pid, models[1:]).items():
                recorders[model] = subprocess.Popen([py_spy, "record", "-p", str(pid), "-r", "100", "-f", "raw", "--nonblocking",
                                                     "-o", str(args.workdir / f"{model}.txt")],
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        outcomes, seconds = run_streams(server.grpc_url, args.task, [frames] * args.streams)
        for recorder in recorders.values():
            recorder.send_signal(subprocess.signal.SIGINT)  # py-spy writes its file on Ctrl-C
            recorder.wait(timeout=60)
        restored = sum(len(o.thumbnails) for o in outcomes)
        print(f"profile: {args.streams} stream(s) x {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}: "
              f"{restored / seconds:.2f} frames/s (includes the warm-up's statistics below)")
        for line in triton_breakdown(server, models):
            print("profile: triton:", line)
    for model in recorders:
        print(f"profile: py-spy, {model} stub (self / inclusive share of its CPU samples):")
        for line in top_functions(args.workdir / f"{model}.txt"):
            print("   ", line)
    if not py_spy:
        print("profile: py-spy not installed (.venv/bin/pip install py-spy): stub profiles skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
