"""Checkpoints: weights saved from the unwrapped module together with their NetConfig."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from training.network import NetConfig, VideoRestorationNet


def save_checkpoint(path: str | Path, model: VideoRestorationNet, **extra: Any) -> None:
    """Write `model` (unwrap DDP/EMA first) with its config; `extra` holds task, step, optimizer..."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), **extra}, tmp)
    tmp.replace(path)


def read_checkpoint(path: str | Path, map_location: str = "cpu") -> dict:
    """The checkpoint's dict, after checking it is one of ours (has 'config' and 'state_dict')."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = torch.load(path, map_location=map_location, weights_only=False)
    if "config" not in data or "state_dict" not in data:
        raise ValueError(f"{path} is not a restore checkpoint (needs 'config' and 'state_dict')")
    return data


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[VideoRestorationNet, dict]:
    """The network (eval mode) and the checkpoint's other entries."""
    data = read_checkpoint(path, map_location)
    model = VideoRestorationNet(NetConfig(**data["config"]))
    model.load_state_dict(data["state_dict"])
    model.eval()
    return model, {k: v for k, v in data.items() if k not in ("config", "state_dict")}


def warm_start(model: VideoRestorationNet, path: str | Path) -> tuple[int, int]:
    """Copy into `model` every parameter of the checkpoint at `path` whose name and shape match;
    the rest keep their initialisation (e.g. U-Net levels added to a trained network, which start
    near identity). Returns (tensors copied, tensors of `model`). A checkpoint for other inputs
    (another task's channels per frame) is refused rather than half-loaded.
    """
    data = read_checkpoint(path)
    theirs = NetConfig(**data["config"])
    if theirs.in_channels != model.config.in_channels or theirs.scale != model.config.scale:
        raise ValueError(f"--init {path}: its network takes {theirs.in_channels} channels per frame at scale "
                         f"{theirs.scale}; this one {model.config.in_channels} at scale {model.config.scale}")
    own = model.state_dict()
    matching = {k: v for k, v in data["state_dict"].items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return len(matching), len(own)
