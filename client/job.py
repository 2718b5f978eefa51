"""Restoring one file: decode -> stream through the server -> encode segments -> assemble.

Restored frames go into segments of `segment_frames` frames inside a work folder next to the
output (`.<output name>.restore/`); a segment is renamed to its final name only once complete.
Segments are encoded independently, so an uninterrupted run and one resumed after any segment
produce the same file. With --resume, finished segments are kept and the stream restarts T//2
frames before the first missing frame, so that frame sees the same window as it would have in
one run. The output appears (by rename) only after everything succeeded; the work folder is
removed then. Encoding runs on its own thread (`background.Worker`), in frame order.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import suppress
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Callable, Iterator

import numpy as np
import tritonclient.grpc as grpcclient
from tqdm import tqdm

from .background import Worker
from .compare import split_screen
from .decode import Source, first_number, is_pattern
from .encode import EncodeSettings, SegmentWriter, VideoFormat, assemble, output_kind
from .errors import Interrupted, RestoreError
from .server import Endpoint, TaskInfo
from .tiling import restore_frames


@dataclass(frozen=True)
class Job:
    """One input file to restore into one output."""

    input: str
    output: str
    task: str
    settings: EncodeSettings
    mask: str | None = None
    resume: bool = False
    segment_frames: int = 300
    max_in_flight: int | None = None
    stall_timeout_s: float = 60.0
    compare: str | None = None  # also write a split-screen before/after video here


@dataclass(frozen=True)
class Result:
    """What a finished restore reports."""

    output: str
    frames: int
    restored_now: int  # frames restored in this run (fewer than `frames` after --resume)
    seconds: float


def check_paths(input_path: str, output: str) -> str:
    """Refuse an output that would overwrite the input or cannot be written; return its kind."""
    kind = output_kind(output)
    if os.path.realpath(input_path) == os.path.realpath(output):
        raise RestoreError(f"output '{output}' is the input: refusing to overwrite it")
    folder = os.path.dirname(output) or "."
    if not os.path.isdir(folder):
        raise RestoreError(f"output folder '{folder}' does not exist")
    try:  # a real write: permission bits say nothing for root or on a read-only file system
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise RestoreError(f"output folder '{folder}' is not writable ({e.strerror})") from None
    return kind


def work_dir(output: str) -> str:
    """The hidden folder beside the output that holds segments until the output is complete."""
    name = os.path.basename(output).replace("%", "_")
    return os.path.join(os.path.dirname(output) or ".", f".{name}.restore")


def _fingerprint(job: Job) -> dict:
    """What must match for --resume to reuse segments: same input bytes, same task and encoding."""
    stat = os.stat(job.input if not is_pattern(job.input) else os.path.dirname(job.input) or ".")
    return {"input": os.path.realpath(job.input), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "task": job.task, "settings": asdict(job.settings), "mask": job.mask,
            "segment_frames": job.segment_frames}


class _Segments:
    """The work folder: which segments are complete, and writing the next ones."""

    def __init__(self, folder: str, kind: str, fingerprint: dict, resume: bool,
                 warn: Callable[[str], None]) -> None:
        self.folder, self.kind = folder, kind
        self._ext = "" if kind == "png" else f".{kind}"
        state_path = os.path.join(folder, "job.json")
        state = None
        if os.path.isdir(folder):
            try:
                with open(state_path) as f:
                    state = json.load(f)
            except (OSError, ValueError):
                pass
            if state is not None and state.get("job") != fingerprint:
                if resume:
                    warn("--resume: the unfinished restore beside the output was for other input or settings; starting afresh")
                state = None
            elif not resume and state is not None:
                warn("an unfinished restore of this output was discarded (use --resume to continue one)")
                state = None
            if state is None:
                shutil.rmtree(folder)
        if state is None:
            os.makedirs(folder)
            state = {"job": fingerprint, "frames": None}
            self._save(state)
        self.state = state
        # Only completed segments carry their final name; anything else is debris of a crash.
        for name in os.listdir(folder):
            if name.startswith("partial-") or name.startswith("assembled"):
                path = os.path.join(folder, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def _save(self, state: dict) -> None:
        tmp = os.path.join(self.folder, "job.json.tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, os.path.join(self.folder, "job.json"))

    def path(self, number: int, partial: bool = False) -> str:
        return os.path.join(self.folder, f"{'partial-' if partial else ''}seg-{number:06d}{self._ext}")

    def start(self, number: int, settings: EncodeSettings, fmt: VideoFormat) -> SegmentWriter:
        """A writer for segment `number`, under a temporary name until `seal`."""
        return SegmentWriter(self.path(number, partial=True), settings, fmt)

    def seal(self, number: int, writer: SegmentWriter) -> None:
        """Finish segment `number` and give it its final name: from now on it counts as done."""
        writer.close()
        os.replace(self.path(number, partial=True), self.path(number))

    def completed(self) -> int:
        """How many leading segments are complete."""
        n = 0
        while os.path.exists(self.path(n)):
            n += 1
        return n

    def finished(self, total_frames: int) -> None:
        """Record that every frame is in a segment (a later --resume goes straight to assembly)."""
        self.state["frames"] = total_frames
        self._save(self.state)


VIDEO_ENDED = "video ended"  # sent into mask_frames() once the video has no more frames


def mask_frames(path: str | None, size: tuple[int, int], warn: Callable[[str], None]) -> Iterator[np.ndarray | None]:
    """Per-frame masks (255 = fill) from an image, video or pattern. A still image (one frame)
    applies to every frame; a mask video needs exactly one frame per video frame: asking past its
    end raises RestoreError, and so does send(VIDEO_ENDED) while it has frames left."""
    if path is None:
        while True:
            yield None

    def binarised(frame) -> np.ndarray:
        if frame.rgb.shape[:2] != size:
            raise RestoreError(f"mask '{path}' is {frame.rgb.shape[1]}x{frame.rgb.shape[0]}, "
                               f"the video is {size[1]}x{size[0]}")
        return np.where(frame.rgb[:, :, :1] >= 128, 255, 0).astype(np.uint8)

    with Source(path, warn) as source:
        frames = source.frames()
        first, second = next(frames, None), next(frames, None)
        if first is None:
            raise RestoreError(f"mask '{path}' has no frames")
        if second is None:  # a still image: the same mask for every frame
            still = binarised(first)
            while True:
                yield still
        for count, frame in enumerate(chain((first, second), frames), start=1):
            if (yield binarised(frame)) == VIDEO_ENDED:
                if next(frames, None) is not None:
                    raise RestoreError(f"mask '{path}' has more frames than the video, which has {count}: "
                                       f"a mask video needs one frame per video frame")
                return
    raise RestoreError(f"mask '{path}' has {count} frames, the video has more: a mask video needs "
                       f"one frame per video frame (a still image applies to all)")


def run_job(job: Job, client: grpcclient.InferenceServerClient, url: Endpoint, task: TaskInfo,
            warn: Callable[[str], None], progress: bool = True, bar_position: int = 0) -> Result:
    """Restore `job.input` into `job.output` through `task` on the server at `url`."""
    started = time.monotonic()
    kind = check_paths(job.input, job.output)
    if task.mask_input and not job.mask:
        raise RestoreError(f"task '{task.name}' needs --mask (an image or video, white = pixels to fill)")
    if job.mask and not task.mask_input:
        raise RestoreError(f"task '{task.name}' takes no mask; drop --mask")
    with Source(job.input, warn) as source:
        segments = _Segments(work_dir(job.output), kind, _fingerprint(job), job.resume, warn)
        done = segments.completed()
        resume_at = done * job.segment_frames
        total = segments.state["frames"]
        if done and job.resume:
            warn(f"--resume: {done} segment(s) ({min(resume_at, total or resume_at)} frames) already restored; continuing")
        restored_now = 0
        if total is None:
            restored_now, total = _restore_frames(job, source, segments, url, client, task, resume_at, warn,
                                                  progress, bar_position)
            segments.finished(total)
        assembled = os.path.join(segments.folder, "assembled" + ("" if kind == "png" else f".{kind}"))
        count = -(-total // job.segment_frames)
        assemble([segments.path(n) for n in range(count)], assembled, kind, job.input, warn)
    _publish(assembled, job.output, kind, first_number(job.input) if is_pattern(job.input) else 1)
    if job.compare:
        os.replace(_compare_path(segments.folder, job.compare), job.compare)
    shutil.rmtree(segments.folder)
    return Result(job.output, total, restored_now, time.monotonic() - started)


def _compare_path(folder: str, compare: str) -> str:
    return os.path.join(folder, "compare" + os.path.splitext(compare)[1])


def _restore_frames(job: Job, source: Source, segments: _Segments, url: Endpoint,
                    client: grpcclient.InferenceServerClient, task: TaskInfo, resume_at: int,
                    warn: Callable[[str], None], progress: bool, bar_position: int) -> tuple[int, int]:
    """Stream the frames from `resume_at` on and write them into segments; return (frames
    restored now, frames in the file)."""
    info = source.info
    first_sent = max(0, resume_at - task.window // 2)
    pts: dict[int, int] = {}
    originals: dict[int, np.ndarray] = {}  # input frames awaiting their restored frame (--compare)
    size = (info.height, info.width)
    decoded = 0

    def frames() -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        nonlocal decoded
        masks = mask_frames(job.mask, size, warn)
        for frame, mask in zip(source.frames(), masks):
            decoded = frame.index + 1
            if frame.rgb.shape[:2] != size:
                raise RestoreError(f"frame size changes at frame {frame.index} "
                                   f"({info.width}x{info.height} -> {frame.rgb.shape[1]}x{frame.rgb.shape[0]}); not supported")
            if frame.index >= first_sent:
                pts[frame.index] = frame.pts
                if job.compare:
                    originals[frame.index] = frame.rgb
                yield frame.index, frame.rgb, mask
        if decoded:
            with suppress(StopIteration):  # a mask video that ends with the video is done
                masks.send(VIDEO_ENDED)

    estimate = info.frames_estimate
    bar = tqdm(total=estimate, initial=min(resume_at, estimate or resume_at), unit="frame",
               desc=os.path.basename(job.input), disable=not progress, dynamic_ncols=True, leave=False,
               position=bar_position)
    writer: SegmentWriter | None = None
    compare: SegmentWriter | None = None
    encoder = Worker()
    restored = 0
    try:
        for index, rgb in restore_frames(client, url, task, frames(), size, keep_from=resume_at,
                                         max_in_flight=job.max_in_flight, stall_timeout_s=job.stall_timeout_s):
            number, offset = divmod(index, job.segment_frames)
            fmt = VideoFormat(rgb.shape[1], rgb.shape[0], info.time_base, info.rate, info.colour, info.bits)
            if writer is None:
                if restored == 0 and not job.settings.pix_fmt and fmt.pix_fmt(job.settings).startswith("yuv444p"):
                    warn(f"odd size {fmt.width}x{fmt.height}: written as {fmt.pix_fmt(job.settings)} (4:2:0 needs "
                         f"even sides); some players only play 4:2:0, .mkv with FFV1 avoids the question")
                writer = segments.start(number, job.settings, fmt)
            if job.compare and compare is None:
                compare = SegmentWriter(_compare_path(segments.folder, job.compare),
                                        EncodeSettings(output_kind(job.compare), crf=job.settings.crf,
                                                       preset=job.settings.preset), fmt)
            frame_pts = pts.pop(index)
            encoder.submit(writer.write, rgb, frame_pts)
            if compare is not None:
                encoder.submit(compare.write, split_screen(originals.pop(index), rgb), frame_pts)
            restored += 1
            bar.update(1)
            if offset == job.segment_frames - 1:
                encoder.submit(segments.seal, number, writer)
                writer = None
        if decoded == 0:
            raise RestoreError(f"'{job.input}' has no decodable video frames")
        if writer is not None:  # the last, shorter segment
            encoder.submit(segments.seal, number, writer)
            writer = None
        if compare is not None:
            encoder.submit(compare.close)
        encoder.finish()
    except (RestoreError, KeyboardInterrupt) as e:
        encoder.stop()  # segments already handed over are sealed; the unfinished one is dropped
        for unfinished in (writer, compare):
            if unfinished is not None:
                unfinished.abort()
        kept = segments.completed() * job.segment_frames
        hint = (f"; {kept} frames are kept: the same command with --resume continues from frame {kept}"
                if kept else "")
        if isinstance(e, KeyboardInterrupt):
            raise Interrupted(f"interrupted{hint}") from None
        raise type(e)(f"{e}{hint}") from None  # a ServerError stays one: the CLI retries those elsewhere
    finally:
        encoder.stop()
        bar.close()
    return restored, decoded


def _publish(assembled: str, output: str, kind: str, first: int) -> None:
    """Move the finished output into place (for a PNG pattern, each numbered file from `first`,
    so frames/00000.png comes back as out/00000.png)."""
    if kind != "png":
        os.replace(assembled, output)
        return
    for n, name in enumerate(sorted(os.listdir(assembled)), start=first):
        os.replace(os.path.join(assembled, name), output % n)
