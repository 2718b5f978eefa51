"""Exported ONNX files kept outside any model repository (build/onnx_cache), keyed on the
checkpoint's bytes and on the source of everything that shapes the graph (training/ and export/,
plus the torch and onnx versions), so repositories that tests and benchmarks build again and
again export each checkpoint once. A changed checkpoint or graph source is a different key.
Processes that want the same entry at once (`make test`'s workers) take turns: the first exports,
the others wait for it and copy its export."""
from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "onnx_cache"
GRAPH_SOURCES = ("training", "export")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:  # the export itself will say what is missing
        return "absent"


def graph_digest() -> str:
    """Hex sha256 of the Python sources under training/ and export/ and the exporter versions."""
    digest = hashlib.sha256(f"torch {_version('torch')} onnx {_version('onnx')}".encode())
    for path in sorted(p for folder in GRAPH_SOURCES for p in (ROOT / folder).glob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


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
    source = entry(cache, checkpoint_sha256, graph_sha256)
    if not (source / "model.onnx").is_file() or not (source / "model.onnx.json").is_file():
        return False
    onnx.parent.mkdir(parents=True, exist_ok=True)
    for name, dest in (("model.onnx", onnx), ("model.onnx.json", onnx.with_name(onnx.name + ".json"))):
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(source / name, tmp)
        tmp.replace(dest)
    return True


def store(cache: Path, checkpoint_sha256: str, graph_sha256: str, onnx: Path) -> None:
    """Keep a copy of `onnx` and its stamp (written whole into a temporary folder, then renamed)."""
    dest = entry(cache, checkpoint_sha256, graph_sha256)
    if dest.is_dir():
        return
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(onnx, tmp / "model.onnx")
    shutil.copyfile(onnx.with_name(onnx.name + ".json"), tmp / "model.onnx.json")
    try:
        tmp.rename(dest)
    except OSError:  # another process stored the same entry meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
