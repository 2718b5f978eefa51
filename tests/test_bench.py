"""The load benchmark against the session's tritonserver, bounded (3 concurrent clients on 3
different clips of one size, so their windows share network calls; the longer run over three
sizes is `make test-long`). The session's server has served other tests first, so ONNX Runtime's
arena has mostly grown: on a fresh server of denoise alone the arena still grew in the measured
rounds (287 -> 308 MiB, 2026-12-06), which the memory check reads as a leak. `benchmarks.run
--smoke` is tests/test_bench_smoke.py."""
from __future__ import annotations

import pytest

from benchmarks.frames import load_frames
from benchmarks.load import CLIPS, MAX_GROWTH, load_clips, run_load, stream_problems
from benchmarks.stream import StreamOutcome, thumbnail
from conftest import inference_counts

pytestmark = [pytest.mark.server]

SAME_SIZE = (176, 144)  # three different clips at one size: their windows can share a network call


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


def test_concurrent_same_size_clients_are_batched_get_their_own_frames_and_memory_stays_flat(triton_server) -> None:
    clips = same_size_clips(16)
    inferences, executions = inference_counts(triton_server, "denoise_net")
    # ONNX Runtime's arena grows in one step the first time dynamic batching forms a larger batch
    # of one stream's windows, which with 4 frames in flight can happen 20+ rounds in (measured
    # 2026-12-01: denoise_net's stub 227 -> 301 MiB, then flat; 2 of 5 runs failed the 5%). One
    # frame in flight per client keeps the batch mix fixed, so what is left to see is a leak. Even so,
    # with the in-graph flow's larger buffers the arena's last step still came late (2026-12-05: flat
    # at 743 MiB for 13 rounds, then 822 MiB in the last one), so this short run checks for what a
    # leak does and a one-time arena step does not: RSS rising in more than one measured round.
    report = run_load(triton_server.grpc_url, triton_server.process.pid, clips, rounds=4, warmup_rounds=10,
                      max_in_flight=1)
    print(report.summary())
    assert report.problems == []
    assert report.frames == 4 * sum(len(c) for c in clips)
    assert report.percentile_ms(99) > 0
    measured = report.rss_kib[report.warmup_rounds - 1:]
    rises = [b - a for a, b in zip(measured, measured[1:]) if b - a > 0.01 * measured[0]]
    assert len(rises) <= 1, report.summary()
    inferences_now, executions_now = inference_counts(triton_server, "denoise_net")
    assert inferences_now - inferences == 14 * 48
    assert executions_now - executions < inferences_now - inferences, "no windows of two streams were batched"


@pytest.mark.long
def test_concurrent_clients_of_three_sizes_over_many_rounds(triton_server) -> None:
    """The longer run: three clips of different sizes, 10 warm-up and 6 measured rounds."""
    clips = load_clips(3, 16, (320, 180))
    assert len({c[0].shape for c in clips}) == 3, "the three clips differ in size"
    report = run_load(triton_server.grpc_url, triton_server.process.pid, clips, rounds=6, warmup_rounds=10,
                      max_in_flight=1)
    print(report.summary())
    assert report.problems == [] and report.frames == 6 * sum(len(c) for c in clips)
    assert report.growth < MAX_GROWTH, report.summary()
