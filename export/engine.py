"""`make engine`: export a task's checkpoint to ONNX and install it for the backend this machine
can run, saying which one and why.

    python -m export.engine --task denoise [--backend auto|onnxruntime|tensorrt]

- TensorRT importable and a CUDA GPU visible: build model_repository/<task>_net/1/model.plan
  (rebuilt only when stale) and write the `tensorrt_plan` config.pbtxt.
- Otherwise: model_repository/<task>_net/1/model.onnx served by the Python backend with ONNX
  Runtime (the CPU config.pbtxt).
`--backend tensorrt` where TensorRT or the GPU is missing exits with status 2 and the reason.
The ONNX is re-exported only when the checkpoint's sha256, or the digest of the graph's source
(export/onnx_cache.py), differs from the one recorded in 1/model.onnx.json, so a repeated
`make engine` takes seconds. A current export committed beside the checkpoint
(training/checkpoints/<task>.onnx) is copied, so a fresh clone exports nothing; `--onnx-cache DIR`
also reuses exports made for other repositories.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from export import onnx_cache
from export.files import atomic_write, sha256_file
from export.plan_memory import PROFILES, profile_for
from export.tensorrt_build import (DEFAULT_WORKSPACE_MIB, GpuStackMissing, ProfileSpec, import_tensorrt,
                                   import_torch_cuda)
from export.triton_config import (ONNX_FILE, PLAN_FILE, NetOptions, WindowOptions,
                                  ensemble_config, net_config, window_config, write)
from training.contract import CPU_BATCH, TASKS, Task, get_task

EXIT_BACKEND_UNAVAILABLE = 2
ADAPTER_HOME = "denoise_net"  # holds the one copy of the Python-backend adapter
ADAPTER_FILES = ("model.py", "ort_runner.py")
# Pure NumPy/OpenCV modules of training/ that the window model runs exactly as training did.
TRAINING = Path(__file__).resolve().parents[1] / "training"


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine."""


def tensorrt_problem() -> str | None:
    """Why a TensorRT plan cannot be built and served here, or None when it can."""
    try:
        import_tensorrt()
        import_torch_cuda()
    except GpuStackMissing as err:
        return str(err)
    return None


def interpreter_report() -> str:
    """Which Python and which TensorRT this run uses (the GPU image has no venv: say which)."""
    try:
        trt = f"TensorRT {import_tensorrt().__version__}"
    except GpuStackMissing:
        trt = "no TensorRT"
    return f"Python {sys.version.split()[0]} ({sys.executable}), {trt}"


def choose_backend(requested: str, problem: str | None) -> tuple[str, str]:
    """(backend, why) for --backend `requested` given `tensorrt_problem()`; BackendUnavailable
    when TensorRT was demanded but cannot run."""
    if requested == "onnxruntime":
        return "onnxruntime", "--backend onnxruntime was requested"
    if requested not in ("auto", "tensorrt"):
        raise ValueError(f"--backend must be auto, onnxruntime or tensorrt, got {requested!r}")
    if problem is None:
        return "tensorrt", "TensorRT is importable and a CUDA GPU is visible"
    if requested == "tensorrt":
        raise BackendUnavailable(f"--backend tensorrt: {problem}")
    return "onnxruntime", f"{problem}; serving the ONNX with ONNX Runtime on CPU instead"


def stale_reason(onnx: Path, stamp: Path, checkpoint_sha256: str, graph_sha256: str,
                 checkpoint_name: str = "checkpoint") -> str | None:
    """Why `onnx` is not an export of a checkpoint with this hash by this graph source, unchanged
    since (its stamp says which), or None when it is."""
    if not (onnx.is_file() and stamp.is_file()):
        return f"{onnx} or its stamp {stamp.name} is missing"
    try:
        recorded = json.loads(stamp.read_text())
    except json.JSONDecodeError:
        return f"{stamp} is not JSON"
    if recorded.get("checkpoint_sha256") != checkpoint_sha256:
        return f"{onnx} was exported from another {checkpoint_name} (checkpoint sha256 differs)"
    if recorded.get("graph_sha256") != graph_sha256:
        return f"{onnx} was exported by another graph source (a module the exporter imports, or torch/onnx, changed)"
    if recorded.get("onnx_sha256") != sha256_file(onnx):
        return f"{onnx} changed since it was exported (its sha256 differs from the stamp's)"
    return None


def onnx_is_current(onnx: Path, stamp: Path, checkpoint_sha256: str, graph_sha256: str) -> bool:
    """True when `onnx` was exported from a checkpoint with this hash by this graph source, and is
    unchanged since."""
    return stale_reason(onnx, stamp, checkpoint_sha256, graph_sha256) is None


def ensure_onnx(checkpoint: Path, onnx: Path, task: Task, force: bool = False, cache: Path | None = None) -> str:
    """Export `checkpoint` to `onnx` unless the stamp beside it says it is current, or an export
    of the same checkpoint by the same graph source is at hand (committed beside the checkpoint,
    or in `cache`); return a one-line account of what happened."""
    from export.onnx_export import export_checkpoint  # torch import: only when exporting

    stamp = onnx_cache.stamp_of(onnx)
    digest, graph = sha256_file(checkpoint), onnx_cache.graph_digest()
    if not force and onnx_is_current(onnx, stamp, digest, graph):
        return f"{onnx} is current (checkpoint sha256 {digest[:12]} and graph source unchanged): not re-exported"
    beside = onnx_cache.shipped(checkpoint)
    if not force and beside.resolve() != onnx.resolve() and onnx_is_current(beside, onnx_cache.stamp_of(beside), digest, graph):
        onnx_cache.copy_export(beside, onnx)
        return f"{onnx} copied from {beside} (exported from this checkpoint by this graph source)"
    with onnx_cache.exclusive(cache, digest, graph):  # a process exporting the same: wait, then copy its export
        if not force and cache and onnx_cache.fetch(cache, digest, graph, onnx) and onnx_is_current(onnx, stamp, digest, graph):
            return f"{onnx} copied from {onnx_cache.entry(cache, digest, graph)} (same checkpoint and graph source)"
        report = export_checkpoint(checkpoint, onnx, task=task)
        atomic_write(stamp, json.dumps({
            "checkpoint": display_path(checkpoint), "checkpoint_sha256": digest, "graph_sha256": graph,
            "onnx_sha256": sha256_file(onnx),
            "opset": report.opset, "max_abs_diff_vs_pytorch": report.max_abs_diff,
            "parity_shapes": [list(s) for s in report.checked_shapes],
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }, indent=2) + "\n")
        if cache:
            onnx_cache.store(cache, digest, graph, onnx)
    return (f"exported {checkpoint} -> {onnx} in {report.seconds:.1f} s (opset {report.opset}); "
            f"parity vs PyTorch on real windows: max |diff| {report.max_abs_diff} grey level(s)")


def display_path(path: Path) -> str:
    """`path` relative to the checkout when inside it (stamps are committed), else absolute."""
    path = path.resolve()
    return str(path.relative_to(onnx_cache.ROOT)) if path.is_relative_to(onnx_cache.ROOT) else str(path)


def link_adapter(repository: Path, task: Task) -> list[Path]:
    """Symlink the ONNX Runtime Python-backend adapter (model.py, ort_runner.py) of denoise_net
    into `<task>_net/1/` where missing, as the committed tasks do; return the links made."""
    version_dir = repository / task.net_model / "1"
    made = []
    for name in ADAPTER_FILES:
        path = version_dir / name
        if path.exists() or path.is_symlink():
            continue
        source = repository / ADAPTER_HOME / "1" / name
        if not source.is_file():
            raise FileNotFoundError(f"{path} is missing and there is no {source} to link it to")
        version_dir.mkdir(parents=True, exist_ok=True)
        path.symlink_to(Path("..") / ".." / ADAPTER_HOME / "1" / name)
        made.append(path)
    return made


def install_window_modules(repository: Path, task: Task) -> list[Path]:
    """Copy the training/ module the task's window model runs beside it: blur_kernel.py for a
    deconvolved task (copies, not links: the repository is often copied to a server whole), so
    serving does exactly what training and evaluation did. Other tasks' window models get none
    (inpaint's propagation runs in its net's graph)."""
    names = ["blur_kernel.py"] if task.deconvolved else []
    return [atomic_write(repository / task.window_model / "1" / name, (TRAINING / name).read_text()) for name in names]


def install(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    print(f"engine: {interpreter_report()}")
    backend, why = choose_backend(args.backend, tensorrt_problem() if args.backend != "onnxruntime" else None)
    print(f"engine: {task.net_model}: backend {backend}, because {why}")
    checkpoint = args.checkpoint or Path("training/checkpoints") / f"{task.name}.pt"
    if not checkpoint.is_file():
        print(f"engine: checkpoint not found: {checkpoint} (train it, or pass --checkpoint)", file=sys.stderr)
        return 1
    version_dir = args.repository / task.net_model / "1"
    onnx = version_dir / ONNX_FILE
    print(f"engine: {ensure_onnx(checkpoint, onnx, task, args.force, args.onnx_cache)}")
    if backend == "tensorrt":
        from export.tensorrt_build import ensure_plan, profile_shapes
        from export.tensorrt_ops import TENSORRT_VERSION, check_task_onnx

        profile = profile_for(task)
        spec = ProfileSpec(max_batch=args.max_batch or profile.max_batch, max_side=args.max_side or profile.max_side)
        problems = check_task_onnx(onnx, task, profile_shapes(task, spec))  # seconds, not a failed build
        if problems:
            raise ValueError(f"{onnx} uses what TensorRT {TENSORRT_VERSION}'s ONNX parser or the profile "
                             "does not take:\n  " + "\n  ".join(map(str, problems)))
        meta, built = ensure_plan(onnx, version_dir / PLAN_FILE, task, spec, args.precision,
                                  args.workspace_mib, args.timing_cache, args.force)
        print(f"engine: {'built' if built else 'kept current'} plan {version_dir / PLAN_FILE} [{meta.tag}] "
              f"(batch <= {spec.max_batch}, sides <= {spec.max_side})")
        options = NetOptions(backend="tensorrt", max_side=spec.max_side, max_batch=spec.max_batch,
                             queue_timeout_s=args.queue_timeout_s)
    else:
        for link in link_adapter(args.repository, task):
            print(f"engine: linked {link} -> {link.readlink()}")
        options = NetOptions(cpu_memory_arena=args.cpu_memory_arena == "true", queue_timeout_s=args.queue_timeout_s,
                             cpu_instances=args.cpu_instances)
    config = write(args.repository / task.net_model / "config.pbtxt", net_config(task, options))
    if (args.repository / task.name).is_dir():
        # The ensemble takes the window model's batch (CPU_BATCH on either backend), which no net's exceeds.
        ensemble = write(args.repository / task.name / "config.pbtxt", ensemble_config(task))
        print(f"engine: wrote {ensemble} (max_batch_size {CPU_BATCH}: Triton wants an ensemble's "
              "at most its steps')")
    print(f"engine: wrote {config} ({'platform tensorrt_plan, KIND_GPU' if backend == 'tensorrt' else 'python backend + ONNX Runtime, KIND_CPU'})")
    window_dir = args.repository / task.window_model
    if window_dir.is_dir():  # absent while a repository is assembled net by net
        window = write(window_dir / "config.pbtxt",
                       window_config(task, WindowOptions(gpu=backend == "tensorrt")))
        print(f"engine: wrote {window} (ring buffers on the {'GPU' if backend == 'tensorrt' else 'CPU'}"
              f"{'; each window with its blur kernel' if task.deconvolved else ''})")
        for copied in install_window_modules(args.repository, task):
            print(f"engine: copied {copied}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export.engine",
        description="Export a task's checkpoint to ONNX and install it into the Triton model "
                    "repository for the backend this machine can run (TensorRT plan on a GPU host "
                    "with TensorRT, ONNX Runtime on CPU otherwise). Exit status 2 when "
                    "--backend tensorrt cannot run here.")
    parser.add_argument("--task", required=True, choices=list(TASKS), help="task whose <task>_net to install")
    parser.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"],
                        help="auto (default): TensorRT when importable with a CUDA GPU, else ONNX "
                             "Runtime; tensorrt: fail with status 2 if it cannot run here")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint to export (default: training/checkpoints/<task>.pt)")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"),
                        help="Triton model repository to install into (default: model_repository)")
    parser.add_argument("--onnx-cache", type=Path, default=None, metavar="DIR",
                        help="reuse (and keep) exports in DIR keyed on checkpoint and graph source "
                             f"(tests and benchmarks use {onnx_cache.CACHE.relative_to(onnx_cache.ROOT)})")
    parser.add_argument("--force", action="store_true",
                        help="re-export the ONNX (and rebuild the plan) even when they look current")
    parser.add_argument("--queue-timeout-s", type=float, default=0, metavar="S",
                        help="reject a request still in the network's queue after S seconds (a request "
                             "may ask for less); 0 (default): no queue policy, because with one Triton "
                             "2.51's dynamic batcher holds some requests ~500 ms (measured: 3x fewer direct "
                             "calls per second on small frames)")
    ort = parser.add_argument_group("ONNX Runtime (used only when the backend is onnxruntime)")
    ort.add_argument("--cpu-memory-arena", default="true", choices=["true", "false"],
                     help="true (default): keep the peak memory of the largest window run and reuse it; "
                          "false: give it back after every call (measured at 1080p: 1.7 GB less held, "
                          "5-17%% more time per window)")
    ort.add_argument("--cpu-instances", type=int, default=NetOptions.cpu_instances, metavar="N",
                     help="net instances, each a process with its own session, one window per call and an "
                          f"equal share of the cores (default {NetOptions.cpu_instances}: one instance on both "
                          "of 2 cores left one idle in its serial steps; see benchmarks/RESULTS.md); each "
                          "holds its own memory, so 1 halves the net's peak")
    trt = parser.add_argument_group("TensorRT (used only when the backend is tensorrt)")
    trt.add_argument("--precision", default="auto", choices=["auto", "fp16", "fp32"],
                     help="plan precision; auto = FP16 where the GPU has fast FP16 (default)")
    trt.add_argument("--max-side", type=int, default=None,
                     help="largest H and W the plan accepts (default: the task's profile in "
                          f"export/plan_memory.py, {', '.join(f'{k} {v.max_side}' for k, v in PROFILES.items())}; "
                          "the optimum is 1080x1920 clamped to it, smallest side 64)")
    trt.add_argument("--max-batch", type=int, default=None,
                     help="largest batch the plan accepts (default: the task's profile, "
                          f"{', '.join(f'{k} {v.max_batch}' for k, v in PROFILES.items())})")
    trt.add_argument("--workspace-mib", type=int, default=DEFAULT_WORKSPACE_MIB,
                     help=f"builder workspace memory pool limit in MiB (default {DEFAULT_WORKSPACE_MIB})")
    trt.add_argument("--timing-cache", type=Path, default=Path("build/tensorrt.timing_cache"),
                     help="TensorRT timing cache, loaded and saved across builds "
                          "(default build/tensorrt.timing_cache)")
    args = parser.parse_args(argv)
    if args.cpu_instances < 1:
        parser.error(f"--cpu-instances must be at least 1, got {args.cpu_instances}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return install(args)
    except BackendUnavailable as err:
        print(f"engine: {err}", file=sys.stderr)
        return EXIT_BACKEND_UNAVAILABLE
    except GpuStackMissing as err:  # TensorRT was there when chosen but a later import failed
        print(f"engine: {err}", file=sys.stderr)
        return EXIT_BACKEND_UNAVAILABLE
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"engine: FAILED: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
