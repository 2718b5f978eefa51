"""Integration tests of the served ensemble against a real tritonserver process.

Frames go over the real gRPC stream protocol (tritonclient); results are compared with the same
network run in-process in PyTorch on the same windows.
"""
from __future__ import annotations

import queue
import re
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import inference_counts, instance_cpu_seconds, instances_that_ran, task_server
from export.repository import load_model_code, served_tasks
from training.checkpoint import load_checkpoint
from training.clips import clip_dir
from training.contract import TASKS
from training.evaluate import restore

window_indices = load_model_code("denoise_window", "windowing").window_indices

pytestmark = [pytest.mark.server, pytest.mark.shipped_exports("denoise")]
ROOT = Path(__file__).resolve().parents[1]
CLIPS = clip_dir()


def decode(name: str, count: int, crop: tuple[int, int] | None = None) -> list[np.ndarray]:
    frames = []
    with av.open(str(CLIPS / name)) as container:
        for frame in container.decode(video=0):
            f = frame.to_ndarray(format="rgb24")
            frames.append(np.ascontiguousarray(f[: crop[0], : crop[1]]) if crop else f)
            if len(frames) == count:
                break
    rng = np.random.default_rng(len(frames))
    return [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in frames]


def in_process(frames: list[np.ndarray], task: str = "denoise", checkpoint: Path | None = None) -> list[np.ndarray]:
    """The shipped network (or `checkpoint`) in-process on the same mirrored windows, through
    training's restore (the uint8 ServingNet, with an aligned network's flow inside it)."""
    model, _ = load_checkpoint(checkpoint or ROOT / "training" / "checkpoints" / f"{task}.pt")
    t = model.config.frames
    windows = np.stack([np.stack([frames[i] for i in window_indices(c, t, len(frames))]) for c in range(len(frames))])
    return list(restore(model, windows, batch=1))


def frame_input(frame: np.ndarray, dtype: str = "UINT8") -> grpcclient.InferInput:
    inp = grpcclient.InferInput("FRAME", list(frame.shape), dtype)
    inp.set_data_from_numpy(frame)
    return inp


class Stream:
    """One gRPC stream; collects responses per sequence until every request got its FINAL."""

    def __init__(self, url: str, task: str = "denoise") -> None:
        self.task = task
        self.client = grpcclient.InferenceServerClient(url)
        self.responses: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.responses.put((result, error)))
        self.sent = 0

    def send(self, seq: int, frame: np.ndarray, index: int, start: bool, end: bool, dtype: str = "UINT8") -> None:
        self.client.async_stream_infer(self.task, [frame_input(frame, dtype)], request_id=f"{seq}:{index}",
                                       sequence_id=seq, sequence_start=start, sequence_end=end,
                                       enable_empty_final_response=True)
        self.sent += 1

    def collect(self, timeout_s: float = 60) -> tuple[dict[int, dict[int, np.ndarray]], list[str]]:
        results: dict[int, dict[int, np.ndarray]] = {}
        errors: list[str] = []
        finals = 0
        while finals < self.sent:
            result, error = self.responses.get(timeout=timeout_s)
            if error is not None:
                errors.append(str(error))
                finals += 1  # an error ends its request
                continue
            response = result.get_response()
            seq = int(response.id.split(":")[0])
            if result.as_numpy("RESTORED") is not None:
                index = int(result.as_numpy("FRAME_INDEX").ravel()[0])
                assert index not in results.setdefault(seq, {}), f"frame {index} of {seq} came twice"
                results[seq][index] = result.as_numpy("RESTORED")[0]
            finals += response.parameters["triton_final_response"].bool_param
        return results, errors

    def close(self) -> None:
        self.client.stop_stream()
        self.client.close()


def send_all(stream: Stream, seq: int, frames: list[np.ndarray]) -> None:
    for i, f in enumerate(frames):
        stream.send(seq, f[None], i, i == 0, i == len(frames) - 1)


def active_sequences(server) -> int:
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith('restore_window_active_sequences{model="denoise_window"}'):
            return int(float(line.split()[-1]))
    raise AssertionError("restore_window_active_sequences not in the metrics")


def assert_close(served: dict[int, np.ndarray], expected: list[np.ndarray]) -> None:
    assert sorted(served) == list(range(len(expected)))
    for i, e in enumerate(expected):
        assert served[i].shape == e.shape, f"frame {i}"
        diff = np.abs(served[i].astype(int) - e.astype(int)).max()
        assert diff <= 1, f"frame {i}: served differs from in-process PyTorch by {diff} grey levels"


@pytest.mark.parametrize("task", [t for t in served_tasks() if not TASKS[t].masked])
def test_served_frames_match_in_process_pytorch(triton_server, task):
    frames = decode("carphone_pristine.mp4", 9 if TASKS[task].scale == 1 else 6)
    stream = Stream(triton_server.grpc_url, task)
    send_all(stream, 11, frames)
    results, errors = stream.collect()
    stream.close()
    assert errors == []
    assert_close(results[11], in_process(frames, task))


def test_two_interleaved_streams_of_different_sizes_come_back_unmixed(triton_server):
    a = decode("carphone_pristine.mp4", 7)
    b = decode("bikes.mp4", 6, crop=(96, 136))
    stream = Stream(triton_server.grpc_url)
    for i in range(max(len(a), len(b))):
        for seq, frames in ((21, a), (22, b)):
            if i < len(frames):
                stream.send(seq, frames[i][None], i, i == 0, i == len(frames) - 1)
    results, errors = stream.collect()
    stream.close()
    assert errors == []
    assert_close(results[21], in_process(a))
    assert_close(results[22], in_process(b))


def test_two_streams_at_once_run_in_both_net_instances_and_each_gets_what_it_gets_alone(triton_server):
    """Windows of two streams run at once in the net's instances, which finish out of order: each
    stream must still get exactly its own frames, as served alone (and in-process)."""
    a = decode("carphone_pristine.mp4", 9)
    b = decode("bikes.mp4", 9, crop=(144, 176))
    alone = {}
    before, _ = inference_counts(triton_server, "denoise_net")
    for seq, frames in ((23, a), (24, b)):
        stream = Stream(triton_server.grpc_url)
        send_all(stream, seq, frames)
        results, errors = stream.collect()
        stream.close()
        alone[seq] = results[seq]
        assert errors == []
    inferences, _ = inference_counts(triton_server, "denoise_net", at_least=before + 18)
    assert inferences - before == 18
    cpu_before = instance_cpu_seconds(triton_server, "denoise_net")
    stream = Stream(triton_server.grpc_url)
    for i in range(len(a)):
        for seq, frames in ((25, a), (26, b)):
            stream.send(seq, frames[i][None], i, i == 0, i == len(frames) - 1)
    together, errors = stream.collect()
    stream.close()
    assert errors == []
    inferences_now, _ = inference_counts(triton_server, "denoise_net", at_least=inferences + 18)
    assert inferences_now - inferences == 18
    cpu_after = instance_cpu_seconds(triton_server, "denoise_net")
    assert len(cpu_after) >= 2 and instances_that_ran(cpu_before, cpu_after) >= 2, \
        f"not every net instance ran windows ({cpu_before} -> {cpu_after}): the test proves nothing"
    for seq, solo in ((25, alone[23]), (26, alone[24])):
        assert sorted(together[seq]) == sorted(solo) == list(range(9))
        for i in range(9):
            # ONNX Runtime may round a batch of 2 differently from a batch of 1, by 1 level at most.
            assert np.abs(together[seq][i].astype(int) - solo[i]).max() <= 1, (seq, i)
    assert_close(together[25], in_process(a))
    assert_close(together[26], in_process(b))


@pytest.mark.parametrize("task", [t for t in served_tasks() if not TASKS[t].masked])
def test_streams_shorter_than_the_window_are_restored_from_mirrored_frames(triton_server, task):
    """1 to 4 frames through a 5-frame window: every frame comes back, and its content is the
    network on the window mirrored as the contract says (frame -1 := 1, n := n-2, reflected again
    until inside; written here, not taken from the server's windowing.py)."""
    def reflect(i: int, n: int) -> int:
        while n > 1 and not 0 <= i < n:
            i = -i if i < 0 else 2 * (n - 1) - i
        return i if n > 1 else 0

    frames = decode("carphone_pristine.mp4", 4)
    model, _ = load_checkpoint(ROOT / "training" / "checkpoints" / f"{task}.pt")
    stream = Stream(triton_server.grpc_url, task)
    for n in range(1, 5):
        send_all(stream, 60 + n, frames[:n])
    results, errors = stream.collect()
    stream.close()
    assert errors == []
    for n in range(1, 5):
        clip = np.stack(frames[:n])
        windows = np.stack([clip[[reflect(c + k, n) for k in range(-model.config.frames // 2, model.config.frames // 2 + 1)]] for c in range(n)])
        assert_close(results[60 + n], list(restore(model, windows)))


@pytest.mark.parametrize("case", ["dtype", "rank", "size_change"])
def test_malformed_request_gets_a_clear_error_and_server_goes_on(triton_server, case):
    frames = decode("carphone_pristine.mp4", 3)
    stream = Stream(triton_server.grpc_url)
    seq = {"dtype": 41, "rank": 42, "size_change": 43}[case]
    stream.send(seq, frames[0][None], 0, True, False)
    if case == "dtype":
        stream.send(seq, frames[1][None].astype(np.float32), 1, False, True, dtype="FP32")
        expected = "FP32|data-type|datatype|data type"
    elif case == "rank":
        stream.send(seq, frames[1][None, :, :, 0], 1, False, True)
        expected = "shape|dims|rank"
    else:
        stream.send(seq, np.ascontiguousarray(frames[1][None, :-2]), 1, False, True)
        expected = r"frame 1 .*frame size cannot change"
    _, errors = stream.collect(timeout_s=30)
    stream.close()
    assert len(errors) == 1, errors
    assert re.search(expected, errors[0]), errors[0]

    good = decode("carphone_pristine.mp4", 4)
    stream = Stream(triton_server.grpc_url)
    send_all(stream, seq + 100, good)
    results, errors = stream.collect()
    stream.close()
    assert errors == [] and sorted(results[seq + 100]) == [0, 1, 2, 3]


def test_operator_protocols_need_the_admin_key(triton_server):
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    with pytest.raises(Exception, match="restricted"):
        client.get_model_repository_index()
    index = client.get_model_repository_index(headers={"triton-grpc-protocol-admin-key": triton_server.admin_key})
    assert "denoise" in [m.name for m in index.models]
    assert client.is_model_ready("denoise")  # inference-side protocols stay open
    client.close()


DTYPES = {"UINT8": np.uint8, "INT8": np.int8, "FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from(sorted(DTYPES)), shape=st.lists(st.integers(0, 9), min_size=1, max_size=5))
def test_window_model_survives_random_tensors(triton_server, dtype, shape):
    data = (np.random.default_rng(0).integers(0, 255, size=shape)).astype(DTYPES[dtype])
    stream = Stream(triton_server.grpc_url)
    seq = 50_000 + np.random.default_rng().integers(1 << 30)
    stream.send(int(seq), data, 0, True, True, dtype=dtype)
    results, errors = stream.collect(timeout_s=30)
    stream.close()
    valid = dtype == "UINT8" and len(shape) == 4 and shape[0] == 1 and shape[3] == 3 and min(shape[1:3]) >= 1
    assert (len(errors) == 0) == valid, (shape, dtype, errors)
    assert triton_server.process.poll() is None
    assert grpcclient.InferenceServerClient(triton_server.grpc_url).is_model_ready("denoise_window")


def test_an_aligned_network_is_served_with_the_alignment_it_was_trained_with(triton_server, served_repository):
    """NetConfig.aligned: the flow and warps are inside the exported graph (the window model only
    windows), and the served frames equal training's restore within 1 level, which differs from
    the same network run without its alignment (the shipped denoise is aligned)."""
    checkpoint = ROOT / "training" / "checkpoints" / "denoise.pt"
    net = load_checkpoint(checkpoint)[0]
    assert net.config.aligned
    assert "align" not in (served_repository / "denoise_window" / "config.pbtxt").read_text()
    frames = decode("carphone_pristine.mp4", 7)
    expected = in_process(frames, checkpoint=checkpoint)
    net.config.aligned = False
    unaligned = list(restore(net.eval(), np.stack([np.stack([frames[i] for i in window_indices(c, 5, 7)])
                                                  for c in range(7)])))
    assert max(np.abs(e.astype(int) - u).max() for e, u in zip(expected, unaligned)) > 5
    stream = Stream(triton_server.grpc_url)
    send_all(stream, 3, frames)
    results, errors = stream.collect()
    stream.close()
    assert errors == []
    assert_close(results[3], expected)


def test_a_killed_server_leaves_no_shared_memory_behind(tmp_path):
    """The Python backend's shared-memory regions in /dev/shm outlive a killed server (hundreds of
    them had piled up, 4.7 GB); each TritonServer gives its regions a prefix of its own and
    removes them when it stops."""
    with task_server(tmp_path, ["denoise"]) as server:
        assert server.shared_memory(), "no region carries this server's prefix: the prefix flag did not apply"
        server.kill()  # Triton 2.51 leaves the regions of a killed server behind (4.7 GB had piled up)
    assert server.shared_memory() == []
