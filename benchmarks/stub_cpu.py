"""CPU time per frame of each Python-backend stub of a task's ensemble, measured through a real
tritonserver (issue 16's budgets): the window model's stub (`<task>_window`) and the network's
stub (`<task>_net`, ONNX Runtime on this CPU) separately, as user + system time read from /proc,
so other processes on the same cores do not inflate it. Also the served frames/s and the share of
the per-frame CPU spent inside the network graph: net / (window + net), and how much CPU other
work on the machine used meanwhile (served frames/s depends on it; CPU per frame hardly does).

    python -m benchmarks.stub_cpu --task all --size 1080p --frames 12 [--repository model_repository]

--size is the restored frame's size; sr4's input frames are a quarter of it each way (1080p:
480x270, as in issue 16's table). Each task gets its own server on a copy of its entries of
--repository (built by `make engine`; benchmarks/repository.py). One stream with as many frames in
flight as `python -m client.restore` keeps by default (--max-in-flight overrides; the net's two
instances both work only while two windows wait): an untimed warm-up stream of --warmup frames,
then the timed stream of --frames other frames of the clip. The warm-up takes what a server pays
once, not per frame: ONNX Runtime's first calls at a new shape, and the first touch of the Python
backend's shared-memory pool, which the windows of a stream's end (window // 2 of them at once)
grow; so by default it is a window and 4 frames long (inpaint at 1080p: a 2-frame warm-up left 8 ms
of page faults per timed frame of a 24-frame stream). inpaint streams a static corner logo mask
(training/masks.py) with every frame.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.frames import load_frames, parse_size
from benchmarks.procstat import CpuMeter, cpu_seconds_each, machine, process_tree
from benchmarks.repository import prepare_repository
from benchmarks.stream import run_streams
from client.local_server import TritonServer
from client.server import TaskInfo
from client.stream import default_in_flight
from export.repository import REPOSITORY
from training.contract import FRAME, FRAME_INDEX, MASK, RESTORED, TASKS, Task, get_task
from training.masks import corner_logo

STUB = "triton_python_backend_stub"


def stub_pids(server_pid: int, model: str) -> list[int]:
    """The Python-backend stub processes (one per instance) of `model` under the server: the
    stub's first argument is `<repository>/<model>/<version>/model.py`."""
    found = []
    for pid in process_tree(server_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0].endswith(STUB) and Path(argv[1]).parts[-3:-2] == (model,):
            found.append(pid)
    return found


@dataclass
class StubCpu:
    """One task's timed stream: CPU per frame of each stub, and what the machine did meanwhile."""

    task: str
    frame_size: tuple[int, int]  # (width, height) of the frames sent
    frames: int
    in_flight: int               # frames sent but not yet answered
    window_ms: float             # `<task>_window` stub CPU per frame
    net_ms: float                # `<task>_net` stub CPU per frame
    server_ms: float             # the whole server tree (tritonserver + every stub) per frame
    frames_per_s: float
    machine_cores: float         # CPU busy on the whole machine meanwhile, in cores
    other_cores: float           # of which neither the server nor this client: other people's work

    @property
    def graph_share(self) -> float:
        """Share of the per-frame stub CPU spent inside the network graph."""
        return self.net_ms / (self.window_ms + self.net_ms)

    def row(self) -> str:
        w, h = self.frame_size
        return (f"| {self.task} | {w}x{h} | {self.frames} | {self.in_flight} | {self.window_ms:.1f} | {self.net_ms:.0f} | "
                f"{100 * self.graph_share:.1f}% | {self.server_ms:.0f} | {self.frames_per_s:.2f} | {self.machine_cores:.2f} | {self.other_cores:.2f} |")


HEADER = ("| task | frames sent | timed frames | in flight | window model CPU ms/frame | net CPU ms/frame | share in graph "
          "| server tree CPU ms/frame | served frames/s | machine busy (cores) | of which others (cores) |"
          "\n|---|---|---|---|---|---|---|---|---|---|---|")


def input_size(task: Task, size: tuple[int, int]) -> tuple[int, int]:
    """Frames sent so that the restored frame is `size`."""
    width, height = size
    if width % task.scale or height % task.scale:
        raise ValueError(f"--size {width}x{height}: not a multiple of {task.name}'s scale {task.scale}")
    return width // task.scale, height // task.scale


def default_warmup(task: Task) -> int:
    """Warm-up frames that leave the timed stream only per-frame costs: a whole window and more."""
    return task.window + 4


def client_in_flight(task: Task, sent_size: tuple[int, int]) -> int:
    """Frames in flight that `python -m client.restore` keeps by default for `task` at `sent_size`."""
    info = TaskInfo(task.name, FRAME, MASK if task.masked else None, FRAME_INDEX, RESTORED, True,
                    window=task.window, scale=task.scale)
    width, height = sent_size
    return default_in_flight(info, width * height * 3)


def static_masks(task: Task, size: tuple[int, int], count: int) -> list[np.ndarray] | None:
    """One (H, W, 1) mask per frame for a masked task (a watermark: the same every frame), else None."""
    if not task.masked:
        return None
    width, height = size
    mask = corner_logo(1, height, width, np.random.default_rng(0))[0][..., np.newaxis]
    return [mask] * count


def measure(task_name: str, size: tuple[int, int], frames: int, warmup: int, repository: Path,
            workdir: Path, max_in_flight: int | None = None, server_args: tuple[str, ...] = ()) -> StubCpu:
    """Serve `task_name` alone from a copy of `repository` and time one stream of `frames` frames
    whose restored size is `size`, `max_in_flight` frames in flight (default: the client's).
    Raises RuntimeError if a stub is missing or frames are lost."""
    task = get_task(task_name)
    net_onnx = repository / task.net_model / "1" / "model.onnx"
    if not net_onnx.is_file():
        raise FileNotFoundError(f"{net_onnx} is missing: run `make engine` (or pass --repository)")
    sent_size = input_size(task, size)
    max_in_flight = max_in_flight or client_in_flight(task, sent_size)
    clip = load_frames(sent_size, warmup + frames)
    if len(clip) < warmup + frames:
        raise ValueError(f"the clip has {len(clip)} frames, fewer than --warmup + --frames = {warmup + frames}")
    masks = static_masks(task, sent_size, len(clip))
    served = prepare_repository(workdir / task.name / "model_repository", task.name, repository)
    with TritonServer(served, workdir / task.name / "tritonserver.log", extra_args=server_args) as server:
        window_pids = stub_pids(server.process.pid, task.window_model)
        net_pids = stub_pids(server.process.pid, task.net_model)
        if not window_pids or not net_pids:
            raise RuntimeError(f"stubs not found under tritonserver {server.process.pid}: {task.window_model} "
                               f"{window_pids}, {task.net_model} {net_pids}")
        if warmup:
            run_streams(server.grpc_url, task.name, [clip[:warmup]], max_in_flight,
                        masks=None if masks is None else [masks[:warmup]])
        before = cpu_seconds_each(window_pids), cpu_seconds_each(net_pids)
        with CpuMeter(server.process.pid) as cpu:
            outcomes, seconds = run_streams(server.grpc_url, task.name, [clip[warmup:]], max_in_flight,
                                            masks=None if masks is None else [masks[warmup:]])
        after = cpu_seconds_each(window_pids), cpu_seconds_each(net_pids)
    outcome = outcomes[0]
    if outcome.errors or sorted(outcome.thumbnails) != list(range(frames)):
        raise RuntimeError(f"{task.name}: {len(outcome.thumbnails)} of {frames} frames back; errors: {outcome.errors[:3]}")
    window_s, net_s = (sum(a[pid] - b[pid] for pid in a if pid in b) for b, a in zip(before, after))
    if len(after[0]) < len(window_pids) or len(after[1]) < len(net_pids):
        raise RuntimeError(f"{task.name}: a stub exited during the timed stream (log: {server.log_path})")
    return StubCpu(task.name, sent_size, frames, max_in_flight, 1000 * window_s / frames, 1000 * net_s / frames,
                   1000 * cpu.use.server_cores * seconds / frames, frames / seconds, cpu.use.machine_cores,
                   max(0.0, cpu.use.machine_cores - cpu.use.server_cores - cpu.use.client_cores))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stub_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", action="append", help="task to serve and time (repeatable; 'all': every task; default denoise)")
    parser.add_argument("--size", type=parse_size, default=parse_size("1080p"),
                        help="restored frame size, WxH or 360p/540p/720p/1080p (default 1080p; sr4 sends a quarter each way)")
    parser.add_argument("--frames", type=int, default=12, help="timed frames per task (default 12)")
    parser.add_argument("--warmup", type=int, help="untimed warm-up frames per task, a stream of their own "
                        "(default: the task's window + 4, e.g. 9 for denoise, 25 for inpaint)")
    parser.add_argument("--max-in-flight", type=int, metavar="N",
                        help="frames sent but not yet answered (default: what `python -m client.restore` keeps, "
                             "2 x window + 8 unless frames are huge)")
    parser.add_argument("--repository", type=Path, default=REPOSITORY, help="built repository to copy the task's models from")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="extra tritonserver argument (repeatable), e.g. "
                             "--server-arg=--backend-config=python,shm-default-byte-size=536870912")
    parser.add_argument("--workdir", type=Path, help="where the served copies and server logs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    names = args.task or ["denoise"]
    tasks = list(TASKS) if "all" in names else names
    for name in tasks:
        get_task(name)  # an unknown name fails before any server starts
    if args.frames < 1 or (args.warmup is not None and args.warmup < 0):
        parser.error("--frames must be >= 1 and --warmup >= 0")
    if args.max_in_flight is not None and args.max_in_flight < 1:
        parser.error(f"--max-in-flight must be >= 1, got {args.max_in_flight}")
    print(f"stub_cpu: {machine()}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at start")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="stub_cpu_") as tmp:
        workdir = args.workdir or Path(tmp)
        for name in tasks:
            warmup = default_warmup(get_task(name)) if args.warmup is None else args.warmup
            print(measure(name, args.size, args.frames, warmup, args.repository, workdir, args.max_in_flight,
                          server_args=tuple(args.server_arg)).row(), flush=True)
    print(f"stub_cpu: load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at end")


if __name__ == "__main__":
    main()
