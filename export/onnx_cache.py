"""Exported ONNX files kept outside any model repository, keyed on the checkpoint's bytes and on
the source of everything that shapes the graph (the modules of training/ and export/ that the
exporter imports, plus the torch, onnx, onnxscript and onnx-ir versions):

- build/onnx_cache: what this checkout exported, so repositories that tests and benchmarks build
  again and again export each checkpoint once. Processes that want the same entry at once
  (`make test`'s workers) take turns: the first exports, the others wait for it and copy its export.
- training/checkpoints/<task>.onnx beside each shipped checkpoint, with its stamp
  (<task>.onnx.json): committed, so a fresh clone exports nothing while checkpoint and graph
  source are those it was exported from (`python -m export.shipped` refreshes them).
A changed checkpoint or graph source is a different key: stale exports are never used.
"""
from __future__ import annotations

import ast
import fcntl
import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "onnx_cache"
GRAPH_ROOT = ROOT / "export" / "onnx_export.py"
GRAPH_PACKAGES = ("training", "export")
EXPORTER_PACKAGES = ("torch", "onnx", "onnxscript", "onnx-ir")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:  # the export itself will say what is missing
        return "absent"


def _module_file(name: str) -> Path | None:
    path = ROOT / (name.replace(".", "/") + ".py")
    return path if path.is_file() else None


def graph_sources(root: Path = GRAPH_ROOT) -> list[Path]:
    """`root` and every module of training/ and export/ it imports, directly or not (read from
    their import statements, function-level ones included), sorted."""
    seen: set[Path] = set()
    todo = [root]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from export import onnx_cache` names a module, `from training.x import f` a name
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            todo += [f for name in names if name.split(".")[0] in GRAPH_PACKAGES and (f := _module_file(name))]
    return sorted(seen)


def graph_digest() -> str:
    """Hex sha256 of `graph_sources()` and the exporter packages' versions."""
    digest = hashlib.sha256(" ".join(f"{p} {_version(p)}" for p in EXPORTER_PACKAGES).encode())
    for path in graph_sources():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stamp_of(onnx: Path) -> Path:
    """The JSON stamp kept beside an exported ONNX file (what it was exported from)."""
    return onnx.with_name(onnx.name + ".json")


def shipped(checkpoint: Path) -> Path:
    """Where the export committed beside `checkpoint` lives (training/checkpoints/<task>.onnx)."""
    return checkpoint.with_suffix(".onnx")


def copy_export(source: Path, onnx: Path) -> None:
    """Copy the ONNX file `source` and its stamp to `onnx` and its stamp, each replaced whole."""
    onnx.parent.mkdir(parents=True, exist_ok=True)
    for src, dest in ((source, onnx), (stamp_of(source), stamp_of(onnx))):
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)


def entry(cache: Path, checkpoint_sha256: str, graph_sha256: str) -> Path:
    return cache / f"{checkpoint_sha256[:16]}-{graph_sha256[:16]}"


@contextmanager
def exclusive(cache: Path | None, checkpoint_sha256: str, graph_sha256: str) -> Iterator[None]:
    """Hold the entry's lock file (`cache` None: nothing to hold) until the block ends."""
    if cache is None:
        yield
        return
    cache.mkdir(parents=True, exist_ok=True)
    with open(entry(cache, checkpoint_sha256, graph_sha256).with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def fetch(cache: Path, checkpoint_sha256: str, graph_sha256: str, onnx: Path) -> bool:
    """Copy the cached ONNX and its stamp to `onnx` (and `onnx`.json); False when not cached."""
    source = entry(cache, checkpoint_sha256, graph_sha256) / "model.onnx"
    if not (source.is_file() and stamp_of(source).is_file()):
        return False
    copy_export(source, onnx)
    return True


def store(cache: Path, checkpoint_sha256: str, graph_sha256: str, onnx: Path) -> None:
    """Keep a copy of `onnx` and its stamp (written whole into a temporary folder, then renamed)."""
    dest = entry(cache, checkpoint_sha256, graph_sha256)
    if dest.is_dir():
        return
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    copy_export(onnx, tmp / "model.onnx")
    try:
        tmp.rename(dest)
    except OSError:  # another process stored the same entry meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
