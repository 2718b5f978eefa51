"""Streaming one file's frames through a served task: one gRPC bidirectional stream, one sequence
id, one request per frame (sequence_start on the first, sequence_end on the last), at most
`max_in_flight` frames unanswered so a long 4K file never sits in memory, and the responses put
back in frame order. A server error, a dropped connection or a silent server ends the stream
with a RestoreError that says which."""
from __future__ import annotations

import queue
import random
from typing import Iterable, Iterator

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from .errors import RestoreError, ServerError
from .reorder import ReorderBuffer
from .server import Endpoint, TaskInfo

FrameIn = tuple[int, np.ndarray, "np.ndarray | None"]  # (index in the file, RGB, mask or None)


def _with_last(items: Iterable[FrameIn]) -> Iterator[tuple[FrameIn, bool]]:
    """Each item with whether it is the last: sequence_end must ride on the last frame itself."""
    it = iter(items)
    try:
        current = next(it)
    except StopIteration:
        return
    for following in it:
        yield current, False
        current = following
    yield current, True


def _tensor(name: str, array: np.ndarray, batched: bool) -> grpcclient.InferInput:
    data = array[None] if batched else array
    tensor = grpcclient.InferInput(name, list(data.shape), "UINT8")
    tensor.set_data_from_numpy(np.ascontiguousarray(data))
    return tensor


def default_in_flight(task: TaskInfo, frame_bytes: int, budget_bytes: int = 2 << 30) -> int:
    """2 windows + 8 frames in flight keeps the server busy; fewer when frames (and their
    restored, upscaled answers) are so large that this would exceed `budget_bytes` of memory.
    Never fewer than T//2 + 1: the server answers a frame only after T//2 more have arrived."""
    per_frame = frame_bytes * (1 + (task.scale or 1) ** 2)
    return max(task.window // 2 + 1, min(2 * task.window + 8, budget_bytes // per_frame))


def restore_stream(client: grpcclient.InferenceServerClient, url: Endpoint, task: TaskInfo,
                   frames: Iterable[FrameIn], *, keep_from: int = 0, max_in_flight: int | None = None,
                   stall_timeout_s: float = 60.0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, restored RGB) in index order for every frame sent from `keep_from` on.

    Frames before `keep_from` are sent only as context for the window (a resumed restore starts
    T//2 frames early so its first kept frame sees the same window as in an uninterrupted run).
    """
    limit = max_in_flight
    if limit is not None and limit <= task.window // 2:
        raise RestoreError(f"--max-in-flight must exceed {task.window // 2}: the server answers a frame "
                           f"only after the {task.window // 2} frames following it arrive")
    sequence_id = random.getrandbits(63) or 1
    responses: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)), headers=url.header_dict)
    reorder: ReorderBuffer | None = None
    first = sent = received = 0

    def take_one() -> None:
        nonlocal received
        try:
            result, error = responses.get(timeout=stall_timeout_s)
        except queue.Empty:
            raise ServerError(f"no answer from {url} for {stall_timeout_s:g} s after frame {first + sent - 1} "
                               f"(server stuck or a model stub died? see the server log)") from None
        if error is not None:
            reason = (error.message() if isinstance(error, InferenceServerException) else str(error)).split("\n")[0]
            if "START flag" in reason:  # Triton no longer knows the sequence: it timed out as idle
                reason += " (the server dropped this stream as idle: frames take longer than its sequence idle timeout)"
            raise ServerError(f"server {url} failed after {received} of {sent} frames sent: {reason}")
        restored = result.as_numpy(task.restored_output)
        if restored is None:  # the empty final response closing a request that restored nothing
            return
        index = int(result.as_numpy(task.index_output).reshape(-1)[0])
        reorder.push(first + index, restored[0] if task.batched else restored)
        received += 1

    def ready() -> Iterator[tuple[int, np.ndarray]]:
        for index, frame in reorder.pop_ready():
            if index >= keep_from:
                yield index, frame

    try:
        for (index, rgb, mask), last in _with_last(frames):
            if reorder is None:
                first, reorder = index, ReorderBuffer(index)
                limit = limit or default_in_flight(task, rgb.nbytes)
            while sent - received >= limit:
                take_one()
                yield from ready()
            inputs = [_tensor(task.frame_input, rgb, task.batched)]
            if task.mask_input:
                inputs.append(_tensor(task.mask_input, mask, task.batched))
            try:
                client.async_stream_infer(
                    task.name, inputs, request_id=str(index), sequence_id=sequence_id,
                    sequence_start=sent == 0, sequence_end=last, enable_empty_final_response=True,
                    outputs=[grpcclient.InferRequestedOutput(task.index_output),
                             grpcclient.InferRequestedOutput(task.restored_output)])
            except InferenceServerException:
                # The stream broke (server gone) between two sends: the cause came through the callback.
                while not responses.empty():
                    take_one()
                raise ServerError(f"server {url} failed after {received} of {sent} frames sent: "
                                   f"the stream broke") from None
            sent += 1
            while not responses.empty():
                take_one()
            yield from ready()
        while received < sent:
            take_one()
            yield from ready()
        if reorder is not None:
            reorder.finish(first + sent)
    finally:
        # Cancel what is still in flight when the consumer stops early or the stream broke.
        client.stop_stream(cancel_requests=received < sent)
