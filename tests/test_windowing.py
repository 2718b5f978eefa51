"""Unit tests of the sliding-window logic behind every <task>_window model (no server)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from export import triton_config
from export.repository import REPOSITORY, load_model_code

windowing = load_model_code("denoise_window", "windowing")
LimitError, Limits, StreamError = windowing.LimitError, windowing.Limits, windowing.StreamError
StreamTable, StreamWindower = windowing.StreamTable, windowing.StreamWindower
mirror_index, window_indices = windowing.mirror_index, windowing.window_indices
MIB = 2**20


def ids(windows) -> list[tuple[int, list[int]]]:
    """(centre, frame ids) of windows over frames whose pixels equal their index, read at once:
    a window is a view of the ring buffer, valid until the stream's next frame."""
    return [(w.index, w.planes[0][:, 0, 0, 0].tolist()) for w in windows]


def run_stream(n: int, window: int = 5) -> list[tuple[int, list[int]]]:
    """Feed frames whose pixels equal their index; return (centre, frame ids in the window)."""
    stream = StreamWindower(window)
    out = []
    for i in range(n):
        out += ids(stream.push(np.full((2, 3, 3), i, np.uint8)))
    out += ids(stream.finish())
    return out


def test_mirror_index_reflects_about_both_ends():
    assert [mirror_index(i, 5) for i in range(-4, 9)] == [4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]
    assert mirror_index(-3, 1) == 0
    with pytest.raises(ValueError):
        mirror_index(0, 0)


def test_every_frame_restored_once_in_order_with_mirrored_edges():
    out = run_stream(8)
    assert [c for c, _ in out] == list(range(8))
    assert out[0][1] == [2, 1, 0, 1, 2]          # frame -1 := frame 1, -2 := 2
    assert out[1][1] == [1, 0, 1, 2, 3]
    assert out[4][1] == [2, 3, 4, 5, 6]
    assert out[7][1] == [5, 6, 7, 6, 5]          # frame n := frame n-2
    for centre, ids in out:
        assert ids == window_indices(centre, 5, 8)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_sequences_shorter_than_the_window(n):
    out = run_stream(n)
    assert [c for c, _ in out] == list(range(n))
    for centre, ids in out:
        assert ids == [mirror_index(centre + k, n) for k in range(-2, 3)]
        assert ids[2] == centre and all(0 <= i < n for i in ids)


def test_windows_are_emitted_as_soon_as_complete():
    stream = StreamWindower(5)
    counts = [len(stream.push(np.zeros((1, 1, 3), np.uint8))) for _ in range(6)]
    assert counts == [0, 0, 1, 1, 1, 1]
    assert [w.index for w in stream.finish()] == [4, 5]


def test_memory_is_bounded_by_the_window():
    stream = StreamWindower(3)
    for i in range(100):
        stream.push(np.zeros((4, 4, 3), np.uint8))
    assert stream.held_bytes == 2 * 3 * 4 * 4 * 3 == windowing.ring_bytes(3, (np.zeros((4, 4, 3), np.uint8),))


@pytest.mark.parametrize("window", [1, 3, 5, 21])
def test_every_window_of_every_stream_length_holds_the_mirrored_frames(window):
    """Mirrored positions are written into the ring itself (windowing.py): whatever the stream's
    length, each window holds exactly the frames window_indices names, read as it is taken."""
    for n in range(1, 3 * window + 2):
        assert run_stream(n, window) == [(c, window_indices(c, window, n)) for c in range(n)], n


@pytest.mark.parametrize("window", [1, 3, 5, 21])
def test_windows_of_a_stream_as_long_as_the_window_are_views_of_the_ring_not_copies(window):
    """Mirrored ends included: a gather copies T frames into new memory (at 1080p and 21 frames,
    174 MB of fresh pages per window), a view costs nothing."""
    for n in (window, window + 1, 3 * window + 2):
        stream = StreamWindower(window)
        windows = [w for i in range(n) for w in stream.push(np.full((2, 2, 3), i, np.uint8))]
        for w in [*windows, *stream.finish()]:
            assert np.shares_memory(w.planes[0], stream._rings[0]) and w.planes[0].flags.c_contiguous, (n, w.index)


def test_windows_of_a_stream_shorter_than_the_window_are_gathered_into_one_buffer():
    """Copies, not views; all into the stream's one gather buffer rather than fresh memory each."""
    stream = StreamWindower(5)
    for i in range(3):
        stream.push(np.full((2, 2, 3), i, np.uint8))
    windows = list(stream.finish())  # all held at once: only their memory is compared here
    assert [w.index for w in windows] == [1, 2]  # window 0 was a view, emitted while streaming
    assert not any(np.shares_memory(w.planes[0], stream._rings[0]) for w in windows)
    assert np.shares_memory(windows[0].planes[0], windows[1].planes[0])


def test_frame_size_change_is_an_error_naming_the_frame():
    table = StreamTable(5, idle_timeout_s=10)
    table.handle(7, True, False, (np.zeros((4, 6, 3), np.uint8),))
    with pytest.raises(StreamError, match=r"frame 1 .*\[\[4, 5, 3\]\].*\[\[4, 6, 3\]\]"):
        table.handle(7, False, False, (np.zeros((4, 5, 3), np.uint8),))
    assert 7 not in table.streams
    with pytest.raises(StreamError, match="unknown"):
        table.handle(7, False, False, (np.zeros((4, 6, 3), np.uint8),))


def test_interleaved_streams_stay_apart_and_end_cleanly():
    table = StreamTable(3, idle_timeout_s=10)
    got: dict[int, list[tuple[int, int]]] = {1: [], 2: []}
    for i in range(5):
        for corrid, base in ((1, 0), (2, 100)):
            last = i == 4
            frame = np.full((2, 2, 3), base + i, np.uint8)
            for w in table.handle(corrid, i == 0, last, (frame,)):
                got[corrid].append((w.index, int(w.planes[0][1, 0, 0, 0])))
    assert got[1] == [(i, i) for i in range(5)]
    assert got[2] == [(i, 100 + i) for i in range(5)]
    assert table.streams == {}


def test_masks_are_windowed_with_their_frames():
    stream = StreamWindower(3)
    out = []
    for i in range(3):
        out += [w.planes[1][:, 0, 0, 0].tolist()
                for w in stream.push(np.full((2, 2, 3), i, np.uint8), np.full((2, 2, 1), 10 * i, np.uint8))]
    out += [w.planes[1][:, 0, 0, 0].tolist() for w in stream.finish()]
    assert out == [[10, 0, 10], [0, 10, 20], [10, 20, 10]]


@pytest.mark.parametrize("width", [1, 7, 8, 13, 176])
def test_masks_are_held_bit_packed_as_the_graph_unpacks_them(width):
    torch = pytest.importorskip("torch")
    from training.processing import pack_masks, unpack_masks

    mask = np.random.default_rng(width).integers(0, 256, (5, width, 1), dtype=np.uint8)
    _, packed = windowing.held_planes(7, (np.zeros((5, width, 3), np.uint8), mask))
    assert packed.shape == (5, -(-width // 8), 1) and packed.dtype == np.uint8
    np.testing.assert_array_equal(packed, pack_masks(mask))  # the window model packs as training does
    np.testing.assert_array_equal(windowing.pack_mask(torch.from_numpy(mask)).numpy(), packed)  # GPU path's code
    unpacked = unpack_masks(torch.from_numpy(packed)[None, None], width)[0, 0, 0].numpy()
    np.testing.assert_array_equal(unpacked, mask[..., 0] >= 128)


def test_a_mask_not_at_its_frames_size_is_refused_naming_both_shapes():
    with pytest.raises(StreamError, match=r"sequence 7: MASK must be \[1, H, W, 1\] at the FRAME's size \[1, 4, 6, 1\], got \[1, 4, 5, 1\]"):
        windowing.held_planes(7, (np.zeros((4, 6, 3), np.uint8), np.zeros((4, 5, 1), np.uint8)))
    alone = frame()
    assert windowing.held_planes(7, (alone,))[0] is alone  # a frame alone is held as it is


def test_idle_streams_are_reaped():
    table = StreamTable(5, idle_timeout_s=1.0)
    table.handle(1, True, False, (np.zeros((1, 1, 3), np.uint8),))
    table.handle(2, True, False, (np.zeros((1, 1, 3), np.uint8),))
    table.streams[2].last_seen += 5  # stream 2 was active more recently
    now = table.streams[1].last_seen + 2
    assert table.reap(now) == [1]
    assert list(table.streams) == [2]


def test_restart_replaces_a_stream():
    table = StreamTable(3, idle_timeout_s=10)
    table.handle(9, True, False, (np.zeros((2, 2, 3), np.uint8),))
    out = [(w.index, w.planes[0].shape) for w in table.handle(9, True, True, (np.ones((3, 3, 3), np.uint8),))]
    assert out == [(0, (3, 3, 3, 3))]


def test_torch_ring_buffer_matches_numpy():
    # The GPU path stores torch CUDA tensors; the same code on torch CPU tensors proves the logic.
    torch = pytest.importorskip("torch")
    frames = [np.random.default_rng(i).integers(0, 255, (3, 4, 3), dtype=np.uint8) for i in range(6)]
    as_numpy, as_torch = StreamTable(5, 10), StreamTable(5, 10)
    compared = 0
    for i, f in enumerate(frames):
        a = as_numpy.handle(1, i == 0, i == 5, (f,))
        b = as_torch.handle(1, i == 0, i == 5, (torch.from_numpy(f),))
        for wa, wb in itertools.zip_longest(a, b):  # each pair compared as it is taken (views)
            assert wa.index == wb.index and isinstance(wb.planes[0], torch.Tensor)
            np.testing.assert_array_equal(wa.planes[0], wb.planes[0].numpy())
            compared += 1
    assert compared == len(frames)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_ring_buffer_stays_on_the_gpu():
    import torch

    table = StreamTable(5, 10)
    out = []
    for i in range(7):
        for w in table.handle(3, i == 0, i == 6, (torch.full((8, 8, 3), i, dtype=torch.uint8, device="cuda"),)):
            assert w.planes[0].is_cuda
            out += ids([w])
    assert [c for c, _ in out] == list(range(7))
    assert out[0][1] == [2, 1, 0, 1, 2] and out[3][1] == [1, 2, 3, 4, 5]


def frame(side: int = 4, value: int = 0) -> np.ndarray:
    return np.full((side, side, 3), value, np.uint8)


def test_a_frame_larger_than_max_side_is_refused_before_anything_is_held():
    table = StreamTable(5, 10, Limits(max_side=8))
    table.handle(1, True, False, (frame(8),))
    with pytest.raises(LimitError, match=r"sequence 2: a 9x9 frame .*max_side 8"):
        table.handle(2, True, False, (frame(9),))
    with pytest.raises(LimitError, match="max_side 8"):
        table.handle(1, False, False, (frame(9),))  # mid-stream: refused, the stream goes on
    assert list(table.streams) == [1] and table.streams[1].received == 1
    assert [w.index for w in table.handle(1, False, True, (frame(8),))] == [0, 1]


def test_streams_past_the_cap_are_refused_and_the_live_ones_go_on():
    table = StreamTable(3, 10, Limits(max_streams=4))
    for corrid in range(4):
        table.handle(corrid, True, False, (frame(value=corrid),))
    for corrid in range(4, 40):
        with pytest.raises(LimitError, match=rf"sequence {corrid} refused: 4 streams are live.*max_streams 4"):
            table.handle(corrid, True, False, (frame(),))
        with pytest.raises(StreamError, match="unknown"):  # its later frames too, and nothing is held
            table.handle(corrid, False, False, (frame(),))
    assert sorted(table.streams) == [0, 1, 2, 3]
    table.handle(2, True, False, (frame(),))  # a restart is not a new stream
    out = table.handle(0, False, True, (frame(value=7),))
    assert [(w.index, w.planes[0][:, 0, 0, 0].tolist()) for w in out] == [(0, [7, 0, 7]), (1, [0, 7, 0])]
    table.handle(99, True, True, (frame(),))  # a slot came free


def test_memory_held_by_frames_is_capped():
    one = windowing.ring_bytes(5, (frame(64),))  # 2 x 5 x 64 x 64 x 3 bytes
    small = windowing.ring_bytes(5, (frame(8),))
    table = StreamTable(5, 10, Limits(max_held_bytes=3 * one + small))
    for corrid in range(3):
        table.handle(corrid, True, False, (frame(64),))
    assert table.held_bytes == 3 * one
    with pytest.raises(LimitError, match=r"sequence 3 refused: its 5 frames of \[64, 64, 3\] need 0.1 MiB and 0.4 MiB are held of 0.4 \(max_held_mib\)"):
        table.handle(3, True, False, (frame(64),))
    table.handle(3, True, False, (frame(8),))  # small frames still fit
    table.handle(0, True, False, (frame(32),))  # a restart gives its old memory back
    assert sorted(table.streams) == [0, 1, 2, 3]


def test_limits_are_validated_and_agree_with_the_config_writer():
    assert windowing.MAX_STREAMS_CEILING == triton_config.MAX_STREAMS_CEILING == 256
    with pytest.raises(ValueError, match="max_streams"):
        Limits(max_streams=257)
    with pytest.raises(ValueError, match="max_streams"):
        Limits(max_streams=0)


@pytest.mark.parametrize("masks", ["none", "grey", "packed"])
def test_the_windowing_benchmark_streams_every_mask_layout(masks):
    from benchmarks.windowing_cpu import cpu_ms_per_frame  # asserts one window per frame itself

    assert cpu_ms_per_frame(REPOSITORY, 5, 12, 24, 36, send=True, masks=masks) > 0
    with pytest.raises(ValueError, match="masks must be one of"):
        cpu_ms_per_frame(REPOSITORY, 5, 12, 24, 36, masks="soft")
