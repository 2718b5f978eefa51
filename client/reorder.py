"""Re-ordering of restored frames. The server answers a frame only once the frames after it have
arrived (the window lags T//2 frames) and may interleave responses, so results come back in any
order; the encoder needs them strictly in order. Pure: no I/O, unit-tested on its own."""
from __future__ import annotations

from typing import Any, Iterator

from .errors import RestoreError


class ReorderBuffer:
    """Holds out-of-order results and releases them in index order, starting at `start`.

    `push` rejects duplicates and indices already released or below `start`; `finish` checks that
    every index up to the end was delivered, so a lost response is an error, never a silent gap.
    """

    def __init__(self, start: int = 0) -> None:
        self._next = start
        self._start = start
        self._pending: dict[int, Any] = {}

    @property
    def next_index(self) -> int:
        """The index the buffer will release next."""
        return self._next

    @property
    def pending(self) -> int:
        """How many results wait for an earlier one."""
        return len(self._pending)

    def push(self, index: int, item: Any) -> None:
        """Accept the result for `index`; a duplicate or an index out of range is an error."""
        if index < self._start:
            raise RestoreError(f"server returned frame {index}, before this stream's first frame {self._start}")
        if index < self._next or index in self._pending:
            raise RestoreError(f"server returned frame {index} twice")
        self._pending[index] = item

    def pop_ready(self) -> Iterator[tuple[int, Any]]:
        """Release, in order, every result whose predecessors have all been released."""
        while self._next in self._pending:
            index = self._next
            self._next += 1
            yield index, self._pending.pop(index)

    def finish(self, end: int) -> None:
        """Check that all indices in [start, end) were released; name the missing ones otherwise."""
        if self._next >= end and not self._pending:
            return
        missing = [i for i in range(self._next, end) if i not in self._pending]
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        extra = [i for i in self._pending if i >= end]
        if extra:
            raise RestoreError(f"server returned frames beyond the last one sent ({end - 1}): {sorted(extra)[:10]}")
        raise RestoreError(f"server never returned {len(missing)} frame(s): {shown}")
