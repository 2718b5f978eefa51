"""Drive the served ensemble as real clients do: one gRPC stream per clip, one request per frame,
one sequence id per clip, at most `max_in_flight` frames awaiting their final response per stream.

Latency of a restored frame = time from sending the request that completed its window (frame
t + T//2 for frame t, the last frame for the tail) to receiving it: what perf_analyzer reports as
request latency for this decoupled model. A thumbnail of every restored frame is kept so callers
can check that no frame went to the wrong stream.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import tritonclient.grpc as grpcclient

from benchmarks.measure import Result, from_latencies, resolution_name
from benchmarks.procstat import CpuMeter

THUMB_STEP = 8  # thumbnails keep every 8th pixel: enough to tell clips apart, tiny to keep
_sequence_ids = itertools.count(int(time.time()) % 1_000_000 * 1000 + 1)


def thumbnail(frame: np.ndarray) -> np.ndarray:
    return frame[::THUMB_STEP, ::THUMB_STEP]


@dataclass
class StreamOutcome:
    """What one stream sent and got back."""

    sequence_id: int
    sent: int = 0
    latencies_s: list[float] = field(default_factory=list)
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict)  # frame index -> thumbnail
    duplicates: list[int] = field(default_factory=list)              # frame indices seen twice
    errors: list[str] = field(default_factory=list)
    finished: bool = False


def run_stream(url: str, model: str, frames: list[np.ndarray], max_in_flight: int = 4,
               timeout_s: float = 600, masks: list[np.ndarray] | None = None) -> StreamOutcome:
    """Send `frames` as one sequence over its own gRPC stream and collect every response.
    `masks`: one (H, W, 1) MASK per frame, for a masked task (inpaint)."""
    outcome = StreamOutcome(next(_sequence_ids))
    slots = threading.Semaphore(max_in_flight)
    sent_at: dict[int, float] = {}
    finals = itertools.count(1)
    done = threading.Event()

    def on_response(result, error) -> None:
        now = time.perf_counter()
        final = True  # an error ends its request
        if error is not None:
            outcome.errors.append(str(error))
        else:
            response = result.get_response()
            restored = result.as_numpy("RESTORED")
            if restored is not None:
                index = int(result.as_numpy("FRAME_INDEX").ravel()[0])
                outcome.latencies_s.append(now - sent_at[int(response.id)])
                if index in outcome.thumbnails:
                    outcome.duplicates.append(index)
                outcome.thumbnails[index] = thumbnail(restored[0])
            final = response.parameters["triton_final_response"].bool_param
        if final:
            slots.release()
            if next(finals) == len(frames):
                done.set()

    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=on_response)
    try:
        for index, frame in enumerate(frames):
            if not slots.acquire(timeout=timeout_s):
                outcome.errors.append(f"no response for {timeout_s:g} s after frame {index - max_in_flight}")
                return outcome
            tensor = grpcclient.InferInput("FRAME", [1, *frame.shape], "UINT8")
            tensor.set_data_from_numpy(frame[np.newaxis])
            inputs = [tensor]
            if masks is not None:
                inputs.append(grpcclient.InferInput("MASK", [1, *masks[index].shape], "UINT8"))
                inputs[-1].set_data_from_numpy(masks[index][np.newaxis])
            sent_at[index] = time.perf_counter()
            client.async_stream_infer(model, inputs, request_id=str(index), sequence_id=outcome.sequence_id,
                                      sequence_start=index == 0, sequence_end=index == len(frames) - 1,
                                      enable_empty_final_response=True)
            outcome.sent += 1
        outcome.finished = done.wait(timeout_s)
        if not outcome.finished:
            outcome.errors.append(f"stream {outcome.sequence_id}: not every request got its final response in {timeout_s:g} s")
    finally:
        client.stop_stream()
        client.close()
    return outcome


def run_streams(url: str, model: str, clips: list[list[np.ndarray]], max_in_flight: int = 4,
                timeout_s: float = 600, masks: list[list[np.ndarray]] | None = None) -> tuple[list[StreamOutcome], float]:
    """One concurrent stream per clip (with `masks[i]`, one MASK per frame, beside clip i if
    given); the outcomes and the wall time until the last one ended."""
    outcomes: list[StreamOutcome | None] = [None] * len(clips)

    def worker(i: int) -> None:
        outcomes[i] = run_stream(url, model, clips[i], max_in_flight, timeout_s, None if masks is None else masks[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(clips))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, time.perf_counter() - start  # type: ignore[return-value]


def served_result(url: str, model: str, clips: list[list[np.ndarray]], server_pid: int | None,
                  max_in_flight: int = 4, config: str = "served ensemble", warmup_frames: int = 10) -> Result:
    """Frames/s and latency of the served ensemble with one stream per clip, all at once, after
    an untimed warm-up of the same streams on their first `warmup_frames` frames (first calls
    at a new shape or batch size are slow in ONNX Runtime).
    Raises RuntimeError if any stream failed or lost frames."""
    if warmup_frames:
        run_streams(url, model, [clip[:warmup_frames] for clip in clips], max_in_flight)
    with CpuMeter(server_pid) as cpu:
        outcomes, seconds = run_streams(url, model, clips, max_in_flight)
    for clip, outcome in zip(clips, outcomes):
        if outcome.errors or sorted(outcome.thumbnails) != list(range(len(clip))):
            raise RuntimeError(f"stream {outcome.sequence_id}: {len(outcome.thumbnails)} of {len(clip)} frames back; "
                               f"errors: {outcome.errors[:3]}")
    latencies = [s for o in outcomes for s in o.latencies_s]
    return from_latencies(config, len(clips), resolution_name(clips[0][0]), latencies, seconds, cpu.use,
                          note=f"{max_in_flight} in flight/stream")
