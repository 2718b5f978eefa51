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


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[VideoRestorationNet, dict]:
    """The network (eval mode) and the checkpoint's other entries."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = torch.load(path, map_location=map_location, weights_only=False)
    if "config" not in data or "state_dict" not in data:
        raise ValueError(f"{path} is not a restore checkpoint (needs 'config' and 'state_dict')")
    model = VideoRestorationNet(NetConfig(**data["config"]))
    model.load_state_dict(data["state_dict"])
    model.eval()
    return model, {k: v for k, v in data.items() if k not in ("config", "state_dict")}
