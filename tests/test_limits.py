"""Server limits against a real tritonserver (the session's, with the committed limits; one of
denoise with a queue timeout): a frame larger than max_side, hundreds of streams opened and
abandoned, a saturated network queue. Each
is refused with a clear error, nothing else is disturbed, and a normal stream is served after."""
from __future__ import annotations

import queue
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import TEST_IDLE_TIMEOUT_S, task_server
from export.repository import REPOSITORY
from export.triton_config import parse
from test_serving import Stream, active_sequences, decode, send_all

pytestmark = [pytest.mark.server]
WINDOW_PARAMETERS = parse((REPOSITORY / "denoise_window" / "config.pbtxt").read_text()).parameters
MAX_SIDE = int(WINDOW_PARAMETERS["max_side"].string_value)
MAX_STREAMS = int(WINDOW_PARAMETERS["max_streams"].string_value)


def wait_for_sequences(server, at_most: int, timeout_s: float = 3 * TEST_IDLE_TIMEOUT_S + 5) -> int:
    """Wait until at most `at_most` denoise streams are held (idle ones are reaped); the count."""
    deadline = time.monotonic() + timeout_s
    while (count := active_sequences(server)) > at_most and time.monotonic() < deadline:
        time.sleep(0.5)
    return count


def assert_normal_stream_served(server, seq: int) -> None:
    frames = decode("carphone_pristine.mp4", 4)
    stream = Stream(server.grpc_url)
    send_all(stream, seq, frames)
    results, errors = stream.collect()
    stream.close()
    assert errors == [] and sorted(results[seq]) == [0, 1, 2, 3]


def test_a_frame_larger_than_max_side_is_refused_and_other_streams_go_on(triton_server):
    frames = decode("carphone_pristine.mp4", 4)
    stream = Stream(triton_server.grpc_url)
    stream.send(501, frames[0][None], 0, True, False)
    stream.send(501, frames[1][None], 1, False, False)
    huge = np.zeros((1, MAX_SIDE + 1, 4000, 3), np.uint8)
    stream.send(502, huge, 0, True, True)
    stream.send(501, frames[2][None], 2, False, False)
    stream.send(501, frames[3][None], 3, False, True)
    results, errors = stream.collect()
    stream.close()
    assert len(errors) == 1 and f"sequence 502: a 4000x{MAX_SIDE + 1} frame" in errors[0], errors
    assert f"max_side {MAX_SIDE}" in errors[0]
    assert sorted(results[501]) == [0, 1, 2, 3]
    assert_normal_stream_served(triton_server, 503)


def test_hundreds_of_abandoned_streams_are_capped_and_the_live_ones_go_on(triton_server):
    assert wait_for_sequences(triton_server, 0) == 0, "streams of an earlier test were never reaped"
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (1, 32, 48, 3), dtype=np.uint8)
    opened = 4 * MAX_STREAMS + 44
    stream = Stream(triton_server.grpc_url)
    for seq in range(1000, 1000 + opened):  # one frame each, never ended: a client that went away
        stream.send(seq, first, 0, True, False)
    _, errors = stream.collect()
    stream.close()
    assert len(errors) == opened - MAX_STREAMS, errors[:3]
    assert all(f"streams are live, the most this server holds (max_streams {MAX_STREAMS})" in e for e in errors), errors[:3]
    assert active_sequences(triton_server) == MAX_STREAMS

    # The streams held before the cap are untouched: three of them run to their end.
    stream = Stream(triton_server.grpc_url)
    for seq in (1000, 1001, 1000 + MAX_STREAMS - 1):
        for i in range(1, 5):
            stream.send(seq, rng.integers(0, 256, first.shape, dtype=np.uint8), i, False, i == 4)
    results, errors = stream.collect()
    stream.close()
    assert errors == []
    assert {seq: sorted(frames) for seq, frames in results.items()} == {
        seq: [0, 1, 2, 3, 4] for seq in (1000, 1001, 1000 + MAX_STREAMS - 1)}

    # The abandoned ones are reaped after the idle timeout (the one test of reaping through a
    # server), and the server serves again.
    assert wait_for_sequences(triton_server, 0) == 0
    assert_normal_stream_served(triton_server, 2000)


@pytest.mark.shipped_exports("denoise")
def test_requests_queued_past_their_timeout_are_rejected_and_the_net_goes_on(tmp_path):
    # With a queue policy (`--queue-timeout-s`; none by default, see export/triton_config.py) the
    # net rejects what waited longer than its timeout (a request may ask for less, as these do):
    # a flood is shed instead of piling up.
    with task_server(tmp_path, ["denoise"], engine_args=("--queue-timeout-s", "300")) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        window = np.random.default_rng(1).integers(0, 256, (1, 5, 360, 640, 3), dtype=np.uint8)
        done: queue.Queue = queue.Queue()
        count = 24
        for i in range(count):
            inp = grpcclient.InferInput("WINDOW", list(window.shape), "UINT8")
            inp.set_data_from_numpy(window)
            client.async_infer("denoise_net", [inp], callback=lambda result, error: done.put(error),
                               request_id=str(i), timeout=200_000)
        errors = [done.get(timeout=120) for _ in range(count)]
        client.close()
        rejected = [str(e) for e in errors if e is not None]
        assert 0 < len(rejected) < count, rejected[:3]
        assert all("timeout" in e.lower() for e in rejected), rejected[:3]
        assert_normal_stream_served(server, 3000)
