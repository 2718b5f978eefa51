"""Where a network's time goes inside its exported graph: ONNX Runtime's own profiler on batch-1
calls at one frame size, each node's kernel time attributed to the torch module that produced it
(the exporter records each node's module path in the ONNX file), and to its operator type.

    python -m benchmarks.graph_profile --task denoise --size 640x360
    python -m benchmarks.graph_profile --task inpaint --size 640x360 --depth 3 --threads 1

The graph is the committed export beside the shipped checkpoint (training/checkpoints/<task>.onnx,
current by its stamp) unless --onnx names another; the session is configured as the served one on
CPU (ONNX Runtime's default graph optimisations). Nodes that ONNX Runtime fused or inserted (layout
reorders) are attributed through the names it gives them, else reported as "(ONNX Runtime)".
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import onnx

from benchmarks.frames import parse_size
from benchmarks.quality import timing_feed
from export.repository import CHECKPOINTS
from training.checkpoint import load_checkpoint

RUNTIME = "(ONNX Runtime)"


def node_scopes(path: Path, depth: int) -> dict[str, str]:
    """ONNX node name, and each of its outputs' names -> its module path (the exporter's name
    scopes, the first `depth` modules below the top-level wrapper, e.g. "net.alignment"); nodes
    outside any module map to "(graph)"."""
    nodes = onnx.load(str(path), load_external_data=False).graph.node
    producer = {out: node for node in nodes for out in node.output}

    def scope(node: onnx.NodeProto) -> str:
        props = {p.key: p.value for p in node.metadata_props}
        names = ast.literal_eval(props["pkg.torch.onnx.name_scopes"]) if "pkg.torch.onnx.name_scopes" in props else []
        modules = [n for n in names[1:-1] if n]  # [top-level wrapper, modules..., the op's own name]
        return modules[min(depth, len(modules)) - 1] if modules else "(graph)"

    def heavy(node: onnx.NodeProto) -> onnx.NodeProto | None:
        # ONNX Runtime fuses a convolution with the additions and activation after it and names the
        # fused node after the last output: the time is the convolution's, so is the module.
        for _ in range(3):
            if node.op_type == "Conv" or not node.input or node.input[0] not in producer:
                break
            node = producer[node.input[0]]
        return node if node.op_type == "Conv" else None

    scopes = {}
    for node in nodes:
        conv = heavy(node)
        scopes[node.name] = scope(node)
        scopes.update({out: scope(conv or node) for out in node.output})
    return scopes


def scope_of(profiled: str, scopes: dict[str, str]) -> str:
    """The scope of a node ONNX Runtime profiled: by its name, or by the output it was named after
    when ONNX Runtime rewrote it (its NCHWc layout names a fused convolution "<output>_nchwc"),
    else RUNTIME (nodes it inserted: layout reorders)."""
    for name in (profiled, profiled.removesuffix("_nchwc")):
        if name in scopes:
            return scopes[name]
    return RUNTIME


def profile(path: Path, feed: dict, runs: int, warmup: int, threads: int) -> tuple[list[dict], float]:
    """ONNX Runtime's node events of `runs` calls after `warmup` untimed ones, and the wall-clock
    ms per call (profiling on)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "graph")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(warmup):
            session.run(None, feed)
        start = time.perf_counter()
        for _ in range(runs):
            session.run(None, feed)
        ms = (time.perf_counter() - start) * 1e3 / runs
        events = json.loads(Path(session.end_profiling()).read_text())
    calls = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    timed_from = calls[-runs]  # the warm-up calls' nodes come first
    return [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
            and e["ts"] >= timed_from], ms


def shares(times: Counter, runs: int, top: int) -> list[str]:
    """Markdown rows "| name | ms per call | share |", largest first; the rest summed in one row."""
    total = sum(times.values())
    ranked = times.most_common()
    rows = [(name, t) for name, t in ranked[:top]]
    if len(ranked) > top:
        rows.append((f"{len(ranked) - top} others", sum(t for _, t in ranked[top:])))
    return [f"| {name} | {t / 1e3 / runs:.1f} | {100 * t / total:.1f}% |" for name, t in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.graph_profile", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--task", default="denoise", help="the shipped network: training/checkpoints/<task>.pt")
    parser.add_argument("--onnx", default="", help="the graph to profile (default: the export beside the checkpoint)")
    parser.add_argument("--size", default="640x360", help="frame size, WxH or 360p/540p/720p/1080p")
    parser.add_argument("--runs", type=int, default=5, help="profiled calls")
    parser.add_argument("--warmup", type=int, default=2, help="calls before them (a fresh session's first are slow)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default, every core)")
    parser.add_argument("--depth", type=int, default=2, help="module depth to attribute to (1: the network, 2: its parts)")
    parser.add_argument("--top", type=int, default=12, help="rows per table")
    args = parser.parse_args(argv)

    checkpoint = CHECKPOINTS / f"{args.task}.pt"
    path = Path(args.onnx) if args.onnx else checkpoint.with_suffix(".onnx")
    for needed in (checkpoint, path):
        if not needed.is_file():
            parser.error(f"{needed} not found (--task {args.task!r}; --onnx for another graph)")
    width, height = parse_size(args.size)
    feed = timing_feed(load_checkpoint(checkpoint)[0].config, height, width)
    events, ms = profile(path, feed, args.runs, args.warmup, args.threads)
    scopes = node_scopes(path, args.depth)
    by_scope, by_op = Counter(), Counter()
    for e in events:
        by_scope[scope_of(e["name"][: -len("_kernel_time")], scopes)] += e["dur"]
        by_op[e["args"]["op_name"]] += e["dur"]
    print(f"{path} at {width}x{height}, batch 1, {args.runs} calls after {args.warmup}, threads "
          f"{args.threads or 'default'}: {ms:.1f} ms per call (profiling on), nodes "
          f"{sum(by_scope.values()) / 1e3 / args.runs:.1f} ms\n")
    print("| module | ms per call | share |\n|---|---|---|", *shares(by_scope, args.runs, args.top), sep="\n")
    print("\n| operator | ms per call | share |\n|---|---|---|", *shares(by_op, args.runs, args.top), sep="\n")


if __name__ == "__main__":
    main()
