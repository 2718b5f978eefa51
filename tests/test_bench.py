"""The load benchmark, bounded (3 concurrent clients on 3 different clips of one size, so their
windows meet in the network's instances; the longer run over three sizes is `make test-long`), on a server of
denoise alone, so it runs early while other exports are still being made.

Its memory check is on the window model, which holds every stream's frames: a stream it failed
to drop would leave its ring buffer behind (~1 MiB a round here, +20% over the measured rounds).
The server as a whole is not checked in this short run: the net model's memory (ONNX Runtime's
arena, glibc's heaps) steps up by tens of MiB at unpredictable rounds even with the arena off
(seen 10 rounds in; 841 -> 929 MiB in the last rounds of a CI run), which a few rounds cannot tell
from a leak. `python -m benchmarks.load` checks the whole server after a 2-minute warm-up.
`benchmarks.run --smoke` is tests/test_bench_smoke.py."""
from __future__ import annotations

import pytest

from benchmarks.frames import load_frames
from benchmarks.load import CLIPS, MAX_GROWTH, load_clips, run_load, stream_problems
from benchmarks.stream import StreamOutcome, thumbnail
from client.local_server import TritonServer
from conftest import inference_counts, instance_cpu_seconds, instances_that_ran, task_server

pytestmark = [pytest.mark.server, pytest.mark.shipped_exports("denoise")]

WARMUP_ROUNDS, ROUNDS = 3, 6
SAME_SIZE = (176, 144)  # three different clips at one size: same-shape windows from different streams


@pytest.fixture(scope="module")
def denoise_server(tmp_path_factory: pytest.TempPathFactory):
    with task_server(tmp_path_factory.mktemp("load"), ["denoise"]) as server:
        yield server


def same_size_clips(frames: int) -> list[list]:
    return [load_frames(SAME_SIZE, frames, name) for name in CLIPS[:3]]


def test_a_frame_from_another_stream_is_reported():
    """The load benchmark's check can fire: same-size streams whose outputs were swapped."""
    clips = same_size_clips(3)
    outcomes = [StreamOutcome(s, thumbnails={i: thumbnail(f) for i, f in enumerate(clip)}) for s, clip in enumerate(clips)]
    assert stream_problems(clips, outcomes) == []
    outcomes[0].thumbnails[1], outcomes[2].thumbnails[1] = outcomes[2].thumbnails[1], outcomes[0].thumbnails[1]
    problems = stream_problems(clips, outcomes)
    assert any("stream 0" in p and "frame 1 looks like stream 2's" in p for p in problems), problems


def test_concurrent_same_size_clients_share_the_net_instances_get_their_own_frames_and_memory_stays_flat(
        denoise_server: TritonServer) -> None:
    clips = same_size_clips(16)
    server = denoise_server
    inferences, _ = inference_counts(server, "denoise_net")
    cpu_before = instance_cpu_seconds(server, "denoise_net")
    report = run_load(server.grpc_url, server.process.pid, clips, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS,
                      max_in_flight=1)
    print(report.summary())
    assert report.problems == []
    assert report.frames == ROUNDS * sum(len(c) for c in clips)
    assert report.percentile_ms(99) > 0
    assert min(report.window_rss_kib) > 0, "no window-model stub found in the server's process tree"
    assert report.window_growth < MAX_GROWTH, report.summary()
    inferences_now, _ = inference_counts(server, "denoise_net", at_least=inferences + (WARMUP_ROUNDS + ROUNDS) * 48)
    assert inferences_now - inferences == (WARMUP_ROUNDS + ROUNDS) * 48
    cpu_after = instance_cpu_seconds(server, "denoise_net")
    assert len(cpu_after) >= 2 and instances_that_ran(cpu_before, cpu_after) >= 2, \
        f"not every net instance ran windows ({cpu_before} -> {cpu_after})"


@pytest.mark.long
def test_concurrent_clients_of_three_sizes_over_many_rounds(denoise_server: TritonServer) -> None:
    """The longer run: three clips of different sizes, 10 warm-up and 6 measured rounds."""
    clips = load_clips(3, 16, (320, 180))
    assert len({c[0].shape for c in clips}) == 3, "the three clips differ in size"
    report = run_load(denoise_server.grpc_url, denoise_server.process.pid, clips, rounds=6, warmup_rounds=10,
                      max_in_flight=1)
    print(report.summary())
    assert report.problems == [] and report.frames == 6 * sum(len(c) for c in clips)
    assert report.growth < MAX_GROWTH, report.summary()
