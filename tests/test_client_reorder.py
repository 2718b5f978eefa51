"""The client's pure streaming logic, no server: re-ordering restored frames, and how many frames
it keeps in flight."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.errors import RestoreError
from client.reorder import ReorderBuffer
from client.server import TaskInfo
from client.stream import default_in_flight


def drain(buffer: ReorderBuffer) -> list[int]:
    return [i for i, _ in buffer.pop_ready()]


def test_out_of_order_arrivals_come_out_in_order():
    buffer, out = ReorderBuffer(), []
    for index in [2, 0, 3, 1, 5, 4]:
        buffer.push(index, f"frame {index}")
        out += list(buffer.pop_ready())
    assert out == [(i, f"frame {i}") for i in range(6)]
    buffer.finish(6)


def test_nothing_is_released_before_its_predecessors():
    buffer = ReorderBuffer()
    buffer.push(1, "b")
    buffer.push(2, "c")
    assert drain(buffer) == [] and buffer.pending == 2
    buffer.push(0, "a")
    assert drain(buffer) == [0, 1, 2] and buffer.next_index == 3


@given(st.integers(0, 1000), st.integers(1, 60).flatmap(lambda n: st.permutations(range(n))))
def test_any_arrival_order_comes_out_in_order(start, order):
    buffer, out = ReorderBuffer(start), []
    for offset in order:
        buffer.push(start + offset, offset)
        out += [item for _, item in buffer.pop_ready()]
    assert out == sorted(order)
    buffer.finish(start + len(order))


@pytest.mark.parametrize("already", [[0], [1]], ids=["released", "pending"])
def test_duplicates_are_rejected(already):
    buffer = ReorderBuffer()
    for index in already:
        buffer.push(index, None)
    drain(buffer)
    with pytest.raises(RestoreError, match="twice"):
        buffer.push(already[-1], None)


def test_index_before_the_start_is_rejected():
    with pytest.raises(RestoreError, match="before this stream's first frame 10"):
        ReorderBuffer(10).push(9, None)


def test_missing_frames_are_named_at_the_end():
    buffer = ReorderBuffer()
    for index in [0, 1, 3, 6]:
        buffer.push(index, None)
    drain(buffer)
    with pytest.raises(RestoreError, match=r"never returned 4 frame\(s\): 2, 4, 5, 7"):
        buffer.finish(8)


def test_frames_beyond_the_end_are_reported():
    buffer = ReorderBuffer()
    buffer.push(0, None)
    buffer.push(5, None)
    drain(buffer)
    with pytest.raises(RestoreError, match="beyond the last one sent"):
        buffer.finish(1)


def test_frames_in_flight_shrink_for_huge_frames_but_never_deadlock():
    def task(scale: int) -> TaskInfo:
        return TaskInfo("t", "FRAME", None, "FRAME_INDEX", "RESTORED", True, window=5, scale=scale)

    assert default_in_flight(task(1), 640 * 360 * 3) == 18
    assert default_in_flight(task(1), 3840 * 2160 * 3) == 18  # 4K: 18 x 2 x 25 MB < 2 GiB
    assert default_in_flight(task(4), 3840 * 2160 * 3) == 5   # x4 answers are 16x larger
    assert default_in_flight(task(4), 7680 * 4320 * 3) == 3   # T//2 + 1: fewer would wait forever
