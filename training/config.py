"""Training configuration: one dataclass whose fields are the command-line flags.

Each field's `help` metadata is its flag's help text, so `python -m training.train --help`
explains every flag and the logged configuration is exactly this dataclass. Fields left at None
take the task's value from TASK_DEFAULTS (the settings its shipped checkpoint was trained with),
so `make train TASK=deblur` reproduces the shipped deblur network without extra flags.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields

from training.contract import TASKS, get_task
from training.degradations import DENOISE_COMPRESS_PROB, DOWNSCALER_PROBS, DOWNSCALERS, SOFT_SIGMA
from training.network import UPSAMPLE_MODES, NetConfig


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


# Per-task settings that differ from the general defaults: the shipped checkpoints' training flags.
TASK_DEFAULTS: dict[str, dict] = {
    "denoise": {"levels": 2, "level_blocks": 1, "aligned": True, "refine_channels": 8, "ema": 0.999,
                "noise_bound": 3.0},
    "deblur": {"channels": 48, "frame_channels": 64, "frame_blocks": 0, "fusion_blocks": 5, "unshuffle": 4,
               "levels": 2, "level_blocks": 2, "refine_channels": 16, "crop": 128, "ema": 0.999, "still_prob": 0.5,
               "lr": 5e-4},
    "sr4": {"channels": 48, "fusion_blocks": 6, "unshuffle": 1, "upsample": "bicubic", "crop": 128, "ema": 0.999},
    "inpaint": {"fusion_blocks": 5, "levels": 2, "level_blocks": 2, "refine_channels": 16, "crop": 128, "ema": 0.999,
                "lr": 5e-4, "propagation_frames": get_task("inpaint").net_frames},
}
# deblock is denoise's network with its own weights, without the noise bound (it would cap the
# changes compression artifacts need).
TASK_DEFAULTS["deblock"] = {**TASK_DEFAULTS["denoise"], "noise_bound": 0.0}
# Data flags that only some tasks' mixtures read (training/data.py, training/degradations.py).
DATA_FLAG_TASKS: dict[str, tuple[str, ...]] = {
    "kernel_error_prob": ("deblur",), "compressed_prob": ("denoise",), "noisy_compressed_prob": ("denoise",),
    "downscaler_probs": ("sr4",), "cut_prob": ("denoise", "deblock"), "soft_prob": ("sr4",),
    "static_camera_prob": ("inpaint",),
}
# NetConfig fields that are flags; scale, masked and deconvolved follow from the task (training/contract.py).
NETWORK_FIELDS = tuple(f.name for f in fields(NetConfig) if f.name not in ("scale", "masked", "deconvolved"))
# General defaults of the fields that some task overrides (None in the dataclass = "task default"):
# the network's are NetConfig's own.
GENERAL_DEFAULTS: dict[str, object] = {
    **{name: getattr(NetConfig(), name) for name in NETWORK_FIELDS}, "crop": 96, "ema": 0.0, "still_prob": 0.3,
    "lr": 1e-3,
}


@dataclass
class TrainConfig:
    task: str = _f("denoise", f"task to train: {', '.join(TASKS)} (training/contract.py)", choices=tuple(TASKS))
    # network (NetConfig fields; None = the task's default, TASK_DEFAULTS then GENERAL_DEFAULTS)
    frames: int = _f(None, "T, frames per window (odd); 1 trains the single-frame ablation")
    channels: int = _f(None, "network width after temporal fusion")
    frame_channels: int = _f(None, "width of the per-frame features")
    frame_blocks: int = _f(None, "residual blocks per frame, before fusion")
    fusion_blocks: int = _f(None, "residual blocks after fusion")
    unshuffle: int = _f(None, "work at 1/r resolution (PixelUnshuffle r): 1, 2 or 4")
    levels: int = _f(None, "U-Net levels after fusion (0 = none; each halves resolution, doubles width)")
    level_blocks: int = _f(None, "residual blocks per U-Net level")
    aligned: bool = _f(None, "warp the neighbours onto the centre frame by optical flow, inside the network's "
                       "graph (training/flow.py)")
    flow_stride: int = _f(None, "with --aligned: estimate the flow at 1/this of the input frames' size (1, 2 or 4; "
                          "sr4's low-resolution frames need every pixel)")
    refine_channels: int = _f(None, "width of a full-resolution refinement stage after the network (0 = none)")
    propagation_frames: int = _f(None, "inpaint: the network takes windows this long (odd, >= --frames) and fills "
                                 "their centre by flow-guided propagation inside its graph (training/propagation.py) "
                                 "before its body sees the centre --frames, as served; 0 = plain windows")
    noise_bound: float = _f(None, "denoise: soft-clip each pixel's change to about this many times the noise "
                            "seen in the input (training/noise_bound.py; do no harm on clean footage); 0 = unbounded")
    upsample: str = _f(None, "scale > 1 (sr4): the upsample of the centre frame the residual is added to "
                       "(bicubic: training/upsample.py)", choices=UPSAMPLE_MODES)
    # optimisation
    steps: int = _f(4000, "optimizer steps (the cosine schedule spans them)")
    time_limit: float = _f(0.0, "minutes; if > 0, stop when reached and let the schedule span the budget: "
                           "progress = max(step/steps, elapsed/time_limit)")
    batch_size: int = _f(8, "windows per step per process")
    crop: int = _f(None, "training crop size (target pixels; sr4 inputs are crop/4)")
    lr: float = _f(None, "peak AdamW learning rate")
    min_lr: float = _f(1e-5, "learning rate at the end of the cosine schedule")
    warmup: int = _f(100, "linear warm-up steps")
    weight_decay: float = _f(1e-4, "AdamW weight decay")
    loss: str = _f("charbonnier", "loss: charbonnier, l1, mse or psnr (minus each sample's PSNR: every sample weighs "
                   "the same in dB)", choices=("charbonnier", "l1", "mse", "psnr"))
    phase_weight: float = _f(0.0, "weight of the phase-bias term (train.phase_bias): the error's local mean must "
                             "not differ between the four pixels of each 2x2 cell, the stripe pattern a "
                             "sub-pixel layout leaves in flat areas (0 = off)")
    grad_clip: float = _f(1.0, "clip the global gradient norm to this (0 = off)")
    ema: float = _f(None, "EMA decay of the weights (e.g. 0.999; 0 = off); validated and shipped if on")
    # data
    still_prob: float = _f(None, "probability a window comes from an animated still instead of a clip")
    synthetic_prob: float = _f(0.0, "probability a still window is a freshly drawn dead-leaves image "
                               "(training/dead_leaves.py: shapes of every size, textured fills) instead of a "
                               "scikit-image still")
    layered_prob: float = _f(0.0, "probability a still window also gets an object moving on its own across the "
                             "camera's motion (training/data.py moving_layer): two motions and the occlusions "
                             "between them, where an aligning network's flow is wrong (0 = off)")
    kernel_error_prob: float = _f(0.0, "deblur: probability that a window whose kernel estimate is 'no blur' gets a "
                                  "small wrong blur instead (training/data.py mistaken_kernel), as the estimate "
                                  "reads on some sharp noisy frames: the network learns to trust the frames there "
                                  "(0 = off)")
    compressed_prob: float = _f(0.0, "denoise: probability that a window is only compressed (JPEG quality 10-95 or "
                                "H.264 CRF 18-40, no noise) instead of drawn from the mixture "
                                "(training/degradations.py), which draws that case about one time in ten (0 = off)")
    noisy_compressed_prob: float = _f(DENOISE_COMPRESS_PROB, "denoise: probability that the mixture compresses a "
                                      "window after its noise (JPEG or H.264, as above); lower gives more of the "
                                      "network to noise, where --task deblock is the one for compression artifacts")
    downscaler_probs: str = _f("", "sr4: how often each downscaler is drawn, comma-separated in the order "
                               f"{','.join(DOWNSCALERS)} (training/degradations.py DOWNSCALERS; '' = the "
                               f"mixture's {','.join(map(str, DOWNSCALER_PROBS))})")
    workers: int = _f(1, "DataLoader worker processes preparing batches")
    threads: int = _f(1, "torch CPU threads in the training process (the machine is shared)")
    seed: int = _f(0, "random seed (data, init)")
    # bookkeeping
    val_every: int = _f(250, "validate every N steps (and at the end)")
    val_count: int = _f(4, "validation windows from the held-out clip during training")
    val_crop: int = _f(256, "centre crop of the validation frames during training (0 = full frame)")
    ckpt_every: int = _f(250, "write run_dir/last.pt (with optimizer state) every N steps")
    run_dir: str = _f("runs/{task}", "where last.pt and log.csv go ({task} is filled in)")
    resume: bool = _f(False, "continue from run_dir/last.pt (weights, optimizer, schedule, step)")
    init: str = _f("", "warm start: copy the weights whose names and shapes match from this checkpoint "
                   "(a fresh optimizer and schedule; e.g. a shipped network that gains U-Net levels; "
                   "with --resume it is not applied again: the run continues from its last.pt)")
    out: str = _f("training/checkpoints/{task}.pt", "write the final model checkpoint here ({task} is filled in; "
                  "'' = do not write one)")
    cut_prob: float = _f(0.0, "denoise, deblock: probability that a window's first or last 1-2 frames come from "
                         "another shot (training/data.py WindowDataset._across_cut; half the time another view of "
                         "the same still or clip, which the graph's scene-cut guard can miss): the network learns "
                         "to check the frames it fuses (0 = off)")
    soft_prob: float = _f(0.0, "sr4: probability that a window's clean frames are softened first (training/data.py "
                          f"soften: Gaussian blur sigma {SOFT_SIGMA[0]:g}-{SOFT_SIGMA[1]:g} px, a source out of focus "
                          "or scaled before), so the network learns that soft low-res input may come from a soft "
                          "original (0 = off)")
    static_camera_prob: float = _f(0.0, "inpaint: probability that a window is its centre frame held still (a "
                                   "static camera, as for a watermark on surveillance footage: nothing a static mask "
                                   "hides is seen in any frame, so the network fills it from the frame alone; "
                                   "training/data.py hold_still; 0 = off)")
    h264_preroll: int = _f(0, "H.264-compressed windows are encoded after 0 to N frames of pre-roll (drawn per "
                           "window; training/degradations.py h264_compress), so they sit mid-GOP, every frame "
                           "predicted, as in real streams; 0 = every window starts at the stream's intra frame")
    device: str = _f("auto", "auto (cuda if available), cpu or cuda")

    def __post_init__(self) -> None:
        for name, value in {**GENERAL_DEFAULTS, **TASK_DEFAULTS.get(self.task, {})}.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        # A data flag that this task's mixture does not read: any value but its default is refused.
        defaults = {f.name: f.default for f in fields(self)}
        for name, tasks in DATA_FLAG_TASKS.items():
            if getattr(self, name) != defaults[name] and self.task not in tasks:
                raise ValueError(f"--{name.replace('_', '-')} is for --task {' or '.join(tasks)}, not {self.task}")
        for name in ("noisy_compressed_prob", "cut_prob", "soft_prob", "static_camera_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name)}")
        if self.cut_prob and self.frames < 3:
            raise ValueError(f"--cut-prob needs --frames 3 or more (a cut beside the centre frame), got {self.frames}")
        if self.h264_preroll < 0:
            raise ValueError(f"--h264-preroll must be >= 0, got {self.h264_preroll}")
        self.downscaler_weights()  # fail at parse time, not in a data worker

    def downscaler_weights(self) -> tuple[float, ...]:
        """--downscaler-probs as probabilities in DOWNSCALERS' order (the mixture's when not given)."""
        if not self.downscaler_probs:
            return DOWNSCALER_PROBS
        try:
            probs = tuple(float(p) for p in self.downscaler_probs.split(","))
        except ValueError:
            probs = ()
        if len(probs) != len(DOWNSCALERS) or min(probs) < 0 or abs(sum(probs) - 1) > 1e-3:
            raise ValueError(f"--downscaler-probs {self.downscaler_probs!r}: give {len(DOWNSCALERS)} probabilities "
                             f">= 0 that sum to 1, for {','.join(DOWNSCALERS)}")
        return tuple(p / sum(probs) for p in probs)  # exactly 1, as NumPy's choice wants

    def net_config(self) -> NetConfig:
        task = get_task(self.task)
        return NetConfig(scale=task.scale, masked=task.masked, deconvolved=task.deconvolved,
                         **{name: getattr(self, name) for name in NETWORK_FIELDS})

    def to_dict(self) -> dict:
        return asdict(self)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a video restoration network on real clips with on-the-fly degradations. "
        "Multi-process: torchrun --nproc_per_node N -m training.train ... (DDP; gloo on CPU).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kw = {"help": f.metadata["help"], "default": f.default if f.default is not MISSING else None}
        if f.name in GENERAL_DEFAULTS:
            per_task = [f"{t} {d[f.name]}" for t, d in TASK_DEFAULTS.items() if f.name in d]
            kw["help"] += f" (default: {'; '.join([str(GENERAL_DEFAULTS[f.name]), *per_task])})"
            kw["default"] = argparse.SUPPRESS  # absent -> None -> filled from the task in __post_init__
        if f.type in ("bool", bool):
            action = argparse.BooleanOptionalAction if f.name in GENERAL_DEFAULTS else "store_true"
            parser.add_argument(flag, action=action, help=kw["help"], default=kw["default"])
            continue
        kw["type"] = {"int": int, "float": float, "str": str}[f.type]
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        parser.add_argument(flag, **kw)
    return TrainConfig(**vars(parser.parse_args(argv)))
