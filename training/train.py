"""The training loop: `python -m training.train --task denoise ...` (see --help for every flag).

AdamW with linear warm-up then cosine decay, Charbonnier/L1/MSE, gradient clipping, optional EMA,
bf16 autocast on CUDA only (fp32 on CPU), DDP when launched by torchrun (gloo on CPU, nccl on
CUDA), run_dir/last.pt every N steps with optimizer state for --resume, a CSV log and a tqdm bar
with loss and validation PSNR. Batches are prepared by DataLoader workers (training/data.py).
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.checkpoint import save_checkpoint, warm_start
from training.config import TrainConfig, parse_args
from training.data import VALIDATION_CLIP, WindowDataset
from training.evaluate import evaluate, validation_set
from training.network import VideoRestorationNet, count_parameters, second_input_name


def git_commit() -> str:
    """HEAD of the repository, with '+dirty' if tracked files are modified."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def to_network(second: torch.Tensor) -> torch.Tensor:
    """A batch's second tensor as the network takes it: uint8 masks to [0, 1], float kernels as they are."""
    return second.float() / 255.0 if second.dtype == torch.uint8 else second


PSNR_LOSS_FLOOR = 1e-6  # MSE of a 60 dB frame (values in [0, 1])


def loss_fn(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if name == "charbonnier":
        # sqrt((x-y)^2 + eps^2): L1-like (robust, sharp) but smooth at 0.
        return torch.sqrt((pred - target) ** 2 + 1e-6).mean()
    if name == "l1":
        return F.l1_loss(pred, target)
    if name == "mse":
        return F.mse_loss(pred, target)
    if name == "psnr":
        # Minus each sample's PSNR / 10, averaged (after HINet's PSNR loss): every sample counts in
        # decibels, as the robustness grid judges, so a sharp frame made 1 dB worse weighs as much
        # as a blurred one left 1 dB short. The floor (60 dB) keeps passed-through frames finite.
        per_sample = ((pred - target) ** 2).flatten(1).mean(dim=1)
        return torch.log10(per_sample + PSNR_LOSS_FLOOR).mean()
    raise ValueError(f"--loss {name!r}: expected charbonnier, l1, mse or psnr")


def phase_bias(pred: torch.Tensor, target: torch.Tensor, block: int = 8) -> torch.Tensor:
    """How far the error's local mean differs between the four pixels of each 2x2 cell.

    pred, target: (B, 3, H, W) in [0, 1]. The grey error is split into its four 2x2 phases, each
    averaged over `block` x `block` cells (2*block pixels square); the result is the mean absolute
    difference of each phase from their average. A network that restores at half resolution and
    lays out 2x2 sub-pixels leaves such a bias in flat areas: stripes of a grey level or two that
    per-pixel losses barely see among the noise (benchmarks/robust.py `stripe_bias` measures it)."""
    phases = F.pixel_unshuffle((pred - target).mean(dim=1, keepdim=True), 2)
    local = F.avg_pool2d(phases, block)
    return (local - local.mean(dim=1, keepdim=True)).abs().mean()


def learning_rate(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up over `cfg.warmup` steps, then cosine from lr to min_lr over `progress` in [0, 1]."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def schedule_progress(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    """How far the run is, in [0, 1+): steps done or wall-clock budget spent, whichever is further."""
    return max(step / cfg.steps, elapsed_s / (60 * cfg.time_limit) if cfg.time_limit > 0 else 0.0)


class EMA:
    """Exponential moving average of a model's weights (buffers copied as they are)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = VideoRestorationNet(model.config).to(next(model.parameters()).device)
        self.model.load_state_dict(model.state_dict())
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - self.decay)


def setup_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group when torchrun launched us."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def train(cfg: TrainConfig) -> dict:
    """Train per `cfg`; returns the final metrics (rank 0) and writes cfg.out if set."""
    torch.set_num_threads(cfg.threads)
    rank, world, device = setup_distributed(cfg)
    torch.manual_seed(cfg.seed)  # same init on every rank (DDP also broadcasts it)
    run_dir = Path(cfg.run_dir.format(task=cfg.task))
    run_dir.mkdir(parents=True, exist_ok=True)
    commit = git_commit()  # the code this run started from (HEAD moves while long runs train)
    net_config = cfg.net_config()
    if cfg.crop % (net_config.scale * net_config.multiple):
        raise ValueError(f"--crop {cfg.crop} must be a multiple of scale*unshuffle*2**levels = "
                         f"{net_config.scale * net_config.multiple}")

    model = VideoRestorationNet(net_config).to(device)
    if cfg.init and not cfg.resume:
        copied, total = warm_start(model, cfg.init)
        if rank == 0:
            print(f"training.train: --init {cfg.init}: copied {copied} of {total} tensors", flush=True)
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, elapsed_before = 0, 0.0
    last = run_dir / "last.pt"
    if cfg.resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {last} (set --run-dir?)")
        state = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and "ema" in state:
            ema.model.load_state_dict(state["ema"])
        step, elapsed_before = state["step"], state["elapsed"]
    ddp = DistributedDataParallel(model) if world > 1 else model

    # Data: each rank draws its own stream; a resumed run continues it at its step.
    dataset = WindowDataset(cfg.task, net_config.input_frames, cfg.crop, cfg.still_prob, seed=cfg.seed + 1000 * rank,
                            deconvolved=net_config.deconvolved,
                            batch_size=cfg.batch_size, start_batch=step, synthetic_prob=cfg.synthetic_prob,
                            kernel_error_prob=cfg.kernel_error_prob, compressed_prob=cfg.compressed_prob,
                            noisy_compressed_prob=cfg.noisy_compressed_prob,
                            downscaler_probs=cfg.downscaler_weights(), layered_prob=cfg.layered_prob,
                            h264_preroll=cfg.h264_preroll, cut_prob=cfg.cut_prob,
                            soft_prob=cfg.soft_prob, static_camera_prob=cfg.static_camera_prob)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0, prefetch_factor=4 if cfg.workers > 0 else None,
    )
    val = validation_set(cfg.task, net_config.input_frames, cfg.val_count, cfg.val_crop or None) if rank == 0 else None

    if rank == 0:
        header = {"config": cfg.to_dict(), "git": commit, "world_size": world, "device": str(device),
                  "parameters": count_parameters(model), "validation_clip": VALIDATION_CLIP}
        print("training.train start " + json.dumps(header), flush=True)
        (run_dir / "config.json").write_text(json.dumps(header, indent=2))
    log_path = run_dir / "log.csv"
    log_file = open(log_path, "a" if cfg.resume else "w", newline="") if rank == 0 else None
    log = csv.writer(log_file) if log_file else None
    if log and not cfg.resume:
        log.writerow(["step", "elapsed_s", "lr", "loss", "val_psnr", "val_ssim"])

    def checkpoint_extra() -> dict:
        return {"task": cfg.task, "step": step, "elapsed": elapsed_before + time.time() - start,
                "train_config": cfg.to_dict(), "git": commit}

    start = time.time()
    bar = tqdm(total=cfg.steps, initial=step, disable=rank != 0, dynamic_ncols=True, mininterval=5)
    val_psnr, val_ssim, running = float("nan"), float("nan"), None
    progress = schedule_progress(cfg, step, elapsed_before)  # a resumed run's schedule goes on where it stopped
    batches = iter(loader)
    while progress < 1.0:
        # Inpaint batches carry masks (uint8, 255 = fill), deblur batches the blur kernels (float).
        degraded, target, *second = next(batches)
        x = degraded.to(device, non_blocking=True).float() / 255.0
        y = target.to(device, non_blocking=True).float() / 255.0
        extra = {second_input_name(net_config): to_network(second[0].to(device, non_blocking=True))} if second else {}
        lr = learning_rate(cfg, step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            pred = ddp(x, **extra).float()
            loss = loss_fn(cfg.loss, pred, y)
            if cfg.phase_weight:
                loss = loss + cfg.phase_weight * phase_bias(pred, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if ema is not None:
            ema.update(model)
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()

        # Rank 0 decides progress (steps or wall-clock budget) so every rank stops and schedules alike.
        elapsed = elapsed_before + time.time() - start
        p = torch.tensor([schedule_progress(cfg, step, elapsed)])
        if world > 1:
            dist.broadcast(p, src=0)
        progress = float(p)

        done = progress >= 1.0
        if rank == 0:
            if step % cfg.val_every == 0 or done:
                val_psnr, val_ssim = evaluate(ema.model if ema else model, val)
                model.train()
            if step % cfg.val_every == 0 or step % 20 == 0 or done:
                log.writerow([step, f"{elapsed:.1f}", f"{lr:.3g}", f"{running:.5f}", f"{val_psnr:.3f}", f"{val_ssim:.4f}"])
                log_file.flush()
            if step % cfg.ckpt_every == 0 or done:
                save_checkpoint(last, model, optimizer=optimizer.state_dict(),
                                ema=ema.model.state_dict() if ema else None, **checkpoint_extra())
            bar.set_postfix(loss=f"{running:.4f}", val_psnr=f"{val_psnr:.2f}", lr=f"{lr:.2g}", refresh=False)
            bar.update(1)
    bar.close()

    result = {"step": step, "wall_time_s": elapsed_before + time.time() - start,
              "val_psnr": val_psnr, "val_ssim": val_ssim}
    if rank == 0 and cfg.out:
        out = cfg.out.format(task=cfg.task)
        shipped = ema.model if ema else model
        machine = f"{platform.machine()}, {os.cpu_count()} CPUs, device {device}, world size {world}"
        save_checkpoint(out, shipped, **{**checkpoint_extra(), **result, "machine": machine})
        print(f"wrote {out}: {json.dumps(result)}", flush=True)
    if log_file:
        log_file.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
