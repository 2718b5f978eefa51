"""The ONNX exports committed beside the shipped checkpoints (training/checkpoints/<task>.onnx and
its stamp <task>.onnx.json), which `make engine`, tests and benchmarks copy instead of exporting
while checkpoint and graph source are those the stamp names (export/onnx_cache.py).

    python -m export.shipped            # re-export the stale ones (minutes each), say what was done
    python -m export.shipped --check    # exit 1 naming each stale or missing export; change nothing

Run it (and commit what it writes) after changing a checkpoint or any module the exporter imports
(`python -c "from export.onnx_cache import graph_sources; print(graph_sources())"` lists them):
a stale export is never used, it only makes a fresh clone export again.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export import onnx_cache
from export.engine import ensure_onnx, stale_reason
from export.files import sha256_file
from export.repository import CHECKPOINTS
from training.contract import TASKS


def shipped_checkpoints(folder: Path = CHECKPOINTS) -> list[Path]:
    """The checkpoints of known tasks in `folder`, by task name."""
    return sorted(p for p in folder.glob("*.pt") if p.stem in TASKS)


def why_stale(checkpoint: Path) -> str | None:
    """Why the export beside `checkpoint` cannot be used, or None when it is current."""
    onnx = onnx_cache.shipped(checkpoint)
    return stale_reason(onnx, onnx_cache.stamp_of(onnx), sha256_file(checkpoint), onnx_cache.graph_digest(),
                        checkpoint.name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export.shipped",
        description="Re-export the ONNX files committed beside the shipped checkpoints "
                    f"({CHECKPOINTS.relative_to(onnx_cache.ROOT)}/<task>.onnx) where the checkpoint or the graph "
                    "source changed since their stamp was written; commit what it writes.")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 naming each stale or missing export")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checkpoints = shipped_checkpoints()
    if not checkpoints:
        print(f"shipped: no checkpoint of a known task in {CHECKPOINTS}", file=sys.stderr)
        return 1
    stale = {c: why for c in checkpoints if (why := why_stale(c))}
    if args.check:
        for why in stale.values():
            print(f"shipped: STALE: {why}: run python -m export.shipped and commit what it writes", file=sys.stderr)
        print(f"shipped: {len(checkpoints) - len(stale)} of {len(checkpoints)} exports current")
        return 1 if stale else 0
    for checkpoint in checkpoints:
        if checkpoint not in stale:
            print(f"shipped: {onnx_cache.shipped(checkpoint)} is current")
            continue
        print(f"shipped: {stale[checkpoint]}: exporting", flush=True)
        print(f"shipped: {ensure_onnx(checkpoint, onnx_cache.shipped(checkpoint), TASKS[checkpoint.stem], cache=onnx_cache.CACHE)}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
