"""ONNX -> TensorRT plan (TensorRT 10 Python API), with the metadata that decides when a plan is
stale, a parity check against ONNX Runtime after every build, and the equivalent trtexec line.

TensorRT plans only load in the TensorRT version, and run well only on the GPU, that built them,
so `make engine` builds on the serving host (inside the Triton container) and records
TensorRT version, GPU, compute capability, precision, ONNX sha256 and profile beside the plan
(model.plan.json); any difference triggers a rebuild instead of a load.

Everything above `build_plan` is pure and tested on CPU, and so are the error paths of the GPU
functions (every TensorRT call that reports failure by returning None or False is checked);
`build_plan`, `run_plan` and `ensure_plan` need TensorRT and a CUDA GPU (PyTorch with CUDA for
the device buffers).
"""
from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx as onnx_format

from export.files import atomic_write, sha256_file
from export.fp32_layers import fp32_node_names, pin_fp32_layers
from export.parity import ParityError, psnr
from training.contract import MAX_BATCH_SIZE, MAX_SIDE, RESTORED, WINDOW, Task

NEEDS_TENSORRT = "needs TensorRT and a CUDA GPU (TensorRT is not installable in this workplace)"
PSNR_MIN_DB = 45.0          # plan vs ONNX Runtime; FP16 rounding alone stays well above this
DEFAULT_WORKSPACE_MIB = 4096
Shape = tuple[int, ...]


@dataclass(frozen=True)
class ProfileSpec:
    """The one optimisation profile: batch 1..max_batch, H and W in [min_side, max_side],
    tuned for opt_batch frames of opt_height x opt_width (1080p)."""

    max_batch: int = MAX_BATCH_SIZE
    min_side: int = 64
    max_side: int = MAX_SIDE
    opt_height: int = 1080
    opt_width: int = 1920
    opt_batch: int = 1  # one 1080p window already fills a data-centre GPU


def profile_shapes(task: Task, spec: ProfileSpec) -> dict[str, tuple[Shape, Shape, Shape]]:
    """(min, opt, max) shape of every network input as in the ONNX graph ([N, T, H, W, C]; deblur's
    kernel [N, K, K]).
    opt sides beyond max_side are clamped to it; inconsistent limits raise ValueError."""
    if not 1 <= spec.opt_batch <= spec.max_batch:
        raise ValueError(f"opt batch {spec.opt_batch} must be in 1..max batch {spec.max_batch}")
    if not 1 <= spec.min_side <= spec.max_side:
        raise ValueError(f"--min-side {spec.min_side} must be in 1..--max-side {spec.max_side}")
    opt_h = min(max(spec.opt_height, spec.min_side), spec.max_side)
    opt_w = min(max(spec.opt_width, spec.min_side), spec.max_side)
    return {name: (tensor.shape(1, spec.min_side, spec.min_side),
                   tensor.shape(spec.opt_batch, opt_h, opt_w),
                   tensor.shape(spec.max_batch, spec.max_side, spec.max_side))
            for name, tensor in task.net_inputs.items()}


def choose_precision(requested: str, platform_has_fast_fp16: bool) -> str:
    """"fp16" or "fp32": `auto` takes FP16 where the GPU runs it fast."""
    if requested not in ("auto", "fp16", "fp32"):
        raise ValueError(f"--precision must be auto, fp16 or fp32, got {requested!r}")
    if requested == "auto":
        return "fp16" if platform_has_fast_fp16 else "fp32"
    return requested


@dataclass(frozen=True)
class PlanMetadata:
    """What a plan depends on; recorded as JSON beside it."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    onnx_sha256: str
    profile: dict[str, list[list[int]]]

    @property
    def tag(self) -> str:
        """Human-readable plan name, e.g. trt10.5.0_nvidia-h100-80gb-hbm3_sm90_fp16."""
        gpu = "-".join("".join(ch if ch.isalnum() else " " for ch in self.gpu_name.lower()).split())
        return f"trt{self.tensorrt_version}_{gpu}_sm{self.compute_capability.replace('.', '')}_{self.precision}"

    def to_json(self) -> str:
        return json.dumps({"tag": self.tag, **asdict(self)}, indent=2, sort_keys=True) + "\n"


def profile_json(shapes: dict[str, tuple[Shape, Shape, Shape]]) -> dict[str, list[list[int]]]:
    """Profile shapes as JSON-comparable lists."""
    return {name: [list(s) for s in triple] for name, triple in shapes.items()}


def stale_reason(plan: Path, recorded: dict | None, wanted: PlanMetadata) -> str | None:
    """Why the plan at `plan` must be (re)built for `wanted`, or None when it can be loaded."""
    if not plan.is_file():
        return f"no plan at {plan}"
    if recorded is None:
        return f"no metadata beside {plan} (built by hand?)"
    labels = {"tensorrt_version": "TensorRT version", "gpu_name": "GPU", "compute_capability":
              "compute capability", "precision": "precision", "onnx_sha256": "ONNX (sha256)",
              "profile": "optimisation profile"}
    for key, label in labels.items():
        if recorded.get(key) != getattr(wanted, key):
            return f"{label} changed: plan has {recorded.get(key)!r}, this build wants {getattr(wanted, key)!r}"
    return None


def _shape_spec(shapes: dict[str, tuple[Shape, Shape, Shape]], which: int) -> str:
    return ",".join(f"{name}:{'x'.join(map(str, triple[which]))}" for name, triple in shapes.items())


def trtexec_command(onnx: Path, plan: Path, shapes: dict[str, tuple[Shape, Shape, Shape]],
                    precision: str, workspace_mib: int, timing_cache: Path, fp32_layers: Sequence[str] = ()) -> str:
    """The trtexec line that builds the same plan as `build_plan` (for debugging and profiling);
    `fp32_layers`: the layers an FP16 build keeps in FP32 (export/fp32_layers.py)."""
    args = ["trtexec", f"--onnx={onnx}", f"--saveEngine={plan}",
            f"--minShapes={_shape_spec(shapes, 0)}", f"--optShapes={_shape_spec(shapes, 1)}",
            f"--maxShapes={_shape_spec(shapes, 2)}", f"--memPoolSize=workspace:{workspace_mib}",
            f"--timingCacheFile={timing_cache}"]
    if precision == "fp16":
        args.append("--fp16")
        if fp32_layers:
            specs = ",".join(f"{name}:fp32" for name in fp32_layers)
            args += ["--precisionConstraints=obey", f"--layerPrecisions={specs}", f"--layerOutputTypes={specs}"]
    return shlex.join(args)


class GpuStackMissing(RuntimeError):
    """TensorRT's Python API or PyTorch with CUDA is not importable here."""


def import_tensorrt():
    """TensorRT's Python module: `tensorrt` (NVIDIA's wheels or a TensorRT install), else
    `tensorrt_bindings` (the tensorrt-cu12-bindings wheel alone over the libraries of the Triton
    container, as packaging/gpu installs it); GpuStackMissing saying so otherwise."""
    try:
        import tensorrt
        return tensorrt
    except (ImportError, OSError) as err:  # OSError: the module is there, its libraries are not
        try:
            import tensorrt_bindings
            return tensorrt_bindings
        except (ImportError, OSError):
            raise GpuStackMissing(f"TensorRT's Python API is not importable ({err}); in the Triton "
                                  "container install packaging/gpu/requirements.txt "
                                  "(tensorrt-cu12-bindings of the container's TensorRT version)") from None


def import_torch_cuda():
    """PyTorch with a visible CUDA GPU (device buffers for the plan); GpuStackMissing otherwise."""
    try:
        import torch
    except ImportError as err:
        raise GpuStackMissing(f"PyTorch is not importable ({err}); the GPU image installs a CUDA build "
                              "(packaging/gpu/requirements.txt)") from None
    if not torch.cuda.is_available():
        raise GpuStackMissing(f"no CUDA GPU is visible to torch {torch.__version__} "
                              f"(CUDA build: {torch.version.cuda or 'none, a CPU build'})")
    return torch


@functools.cache
def _logger() -> "trt.ILogger":  # noqa: F821 - tensorrt is imported lazily
    """The process's one TensorRT logger (TensorRT objects keep using the logger they got)."""
    trt = import_tensorrt()
    return trt.Logger(trt.Logger.WARNING)


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the ONNX, build, load or run a plan; the message says which."""


def apply_timing_cache(config, cached: bytes, source: Path) -> str:
    """Give the builder `config` the timing cache serialized in `cached` (empty: a new one);
    a cache TensorRT rejects (another version or GPU, or corrupt) is replaced by a new one.
    Returns what happened, for the log."""
    if cached:
        cache = config.create_timing_cache(cached)
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return f"loaded timing cache {source}"
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineBuildError("TensorRT could not create an empty timing cache")
    return (f"timing cache {source} rejected by this TensorRT/GPU: starting a new one" if cached
            else f"new timing cache (saved to {source})")


def build_plan(onnx: Path, shapes: dict[str, tuple[Shape, Shape, Shape]], precision: str,
               workspace_mib: int, timing_cache: Path) -> bytes:
    """Serialized plan for `onnx`; the timing cache at `timing_cache` is loaded and saved back."""
    trt = import_tensorrt()
    builder = trt.Builder(_logger())
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, _logger())
    if not parser.parse_from_file(str(onnx)):
        errors = "\n".join(f"  {parser.get_error(i)}" for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT {trt.__version__} could not parse {onnx}:\n{errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if precision == "fp16":
        # BuilderFlag.FP16 is deprecated from TensorRT 10.12 (removed in 11) in favour of strongly
        # typed networks built from an FP16 ONNX; our ONNX is FP32 with uint8 edges, so the flag
        # is still the way to let the builder pick FP16 kernels in 10.x.
        config.set_flag(trt.BuilderFlag.FP16)
        if pin_fp32_layers(network, trt):  # deblur's in-graph DFTs (export/fp32_layers.py)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    if config.add_optimization_profile(profile) < 0:
        raise EngineBuildError(f"TensorRT rejected the optimisation profile {profile_json(shapes)}")
    print("tensorrt_build: " + apply_timing_cache(
        config, timing_cache.read_bytes() if timing_cache.is_file() else b"", timing_cache))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT {trt.__version__} failed to build a plan from {onnx} "
                               "(see the TensorRT log above)")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


def load_engine(plan: bytes):
    """The plan deserialized on the current CUDA device; EngineBuildError if TensorRT refuses it."""
    trt = import_tensorrt()
    engine = trt.Runtime(_logger()).deserialize_cuda_engine(plan)
    if engine is None:
        raise EngineBuildError(f"TensorRT {trt.__version__} could not deserialize the plan "
                               "(built by another TensorRT version or for another GPU?)")
    return engine


def engine_memory_bytes(engine) -> int:
    """Device memory an execution context of `engine` takes at the profile's maximum shapes."""
    return int(getattr(engine, "device_memory_size_v2", None) or engine.device_memory_size)


def run_plan(engine, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """RESTORED for `feeds` (uint8 arrays by input name), computed by `engine` on the current
    CUDA device. A context TensorRT cannot create (no memory for the activations) or an input
    shape outside the profile raises EngineBuildError naming it."""
    context = engine.create_execution_context()
    if context is None:
        raise EngineBuildError("TensorRT could not create an execution context: not enough GPU memory "
                               f"for the activations at the profile's maximum ({engine_memory_bytes(engine) / 2**30:.2f} GiB); "
                               "lower --max-batch or --max-side")
    for name, array in feeds.items():
        if not context.set_input_shape(name, tuple(array.shape)):
            raise EngineBuildError(f"TensorRT refused input {name} of shape {list(array.shape)}: "
                                   "not an input of the plan, or outside its optimisation profile")
    torch = import_torch_cuda()
    buffers = {}
    for name, array in feeds.items():
        buffers[name] = torch.from_numpy(np.ascontiguousarray(array)).cuda()
        if not context.set_tensor_address(name, buffers[name].data_ptr()):
            raise EngineBuildError(f"TensorRT refused the device address of input {name}")
    out = torch.empty(tuple(context.get_tensor_shape(RESTORED)), dtype=torch.uint8, device="cuda")
    if not context.set_tensor_address(RESTORED, out.data_ptr()):
        raise EngineBuildError(f"TensorRT refused the device address of {RESTORED}")
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise EngineBuildError(f"TensorRT execution failed for shapes "
                               f"{ {k: list(v.shape) for k, v in feeds.items()} }")
    stream.synchronize()
    return out.cpu().numpy()


def gpu_identity() -> tuple[str, str]:
    """(name, compute capability "major.minor") of CUDA device 0."""
    torch = import_torch_cuda()
    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), f"{major}.{minor}"


def platform_has_fast_fp16() -> bool:
    """The builder's FP16 capability (an attribute deprecated in late 10.x, gone in 11)."""
    trt = import_tensorrt()
    return bool(getattr(trt.Builder(_logger()), "platform_has_fast_fp16", False))


def check_plan(plan: bytes, onnx: Path, task: Task, max_side: int) -> float:
    """Lowest PSNR (dB) between the plan and ONNX Runtime over real-window parity cases (cropped
    to the profile's `max_side`); raise ParityError below PSNR_MIN_DB."""
    import onnxruntime as ort

    engine = load_engine(plan)
    print(f"tensorrt_build: the plan's activations at the profile's maximum take "
          f"{engine_memory_bytes(engine) / 2**30:.2f} GiB of GPU memory")
    from export.onnx_export import parity_cases
    from export.samples import read_window, sample_clip

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    worst = float("inf")
    window = read_window(sample_clip(), task.net_frames)[:, :, :max_side, :max_side]
    for feeds in parity_cases(window, list(task.net_inputs)):
        value = psnr(run_plan(engine, feeds), session.run([RESTORED], feeds)[0])
        if value < PSNR_MIN_DB:
            raise ParityError(f"TensorRT plan vs ONNX Runtime on {WINDOW} shape {list(feeds[WINDOW].shape)}: "
                              f"PSNR {value:.2f} dB < {PSNR_MIN_DB} dB")
        worst = min(worst, value)
    return worst


def ensure_plan(onnx: Path, plan: Path, task: Task, spec: ProfileSpec, precision: str,
                workspace_mib: int, timing_cache: Path, force: bool = False) -> tuple[PlanMetadata, str | None]:
    """Build `plan` from `onnx` unless a fresh one is there; return its metadata and why it was
    built (None when the existing plan was kept). A plan that fails parity is not installed."""
    trt = import_tensorrt()
    shapes = profile_shapes(task, spec)
    gpu, capability = gpu_identity()
    wanted = PlanMetadata(trt.__version__, gpu, capability,
                          choose_precision(precision, platform_has_fast_fp16()),
                          sha256_file(onnx), profile_json(shapes))
    meta_path = plan.with_name(plan.name + ".json")
    recorded = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    reason = "--force given" if force else stale_reason(plan, recorded, wanted)
    if reason is None:
        return wanted, None
    print(f"tensorrt_build: building {plan} [{wanted.tag}] because {reason}")
    print("tensorrt_build: equivalent trtexec command:\n  "
          + trtexec_command(onnx, plan, shapes, wanted.precision, workspace_mib, timing_cache,
                            fp32_node_names(onnx_format.load(str(onnx)))))
    blob = build_plan(onnx, shapes, wanted.precision, workspace_mib, timing_cache)
    worst = check_plan(blob, onnx, task, spec.max_side)
    print(f"tensorrt_build: parity vs ONNX Runtime on real windows: lowest PSNR {worst:.2f} dB "
          f"(>= {PSNR_MIN_DB} dB required)")
    atomic_write(plan, blob)
    atomic_write(meta_path, wanted.to_json())
    return wanted, reason
