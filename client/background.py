"""One worker thread that runs submitted calls in order, so encoding the restored frames overlaps
decoding and streaming instead of taking turns with them (x264 and swscale release the GIL)."""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class Worker:
    """Runs `submit`ted calls one after another on its own thread. The first failure stops the
    rest and is raised by the next `submit` or by `finish`."""

    def __init__(self, depth: int = 8) -> None:
        self._calls: queue.Queue = queue.Queue(maxsize=depth)  # bounds the frames waiting in memory
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            if self._error is None:
                try:
                    call[0](*call[1])
                except BaseException as e:  # handed to the submitting thread
                    self._error = e

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._calls.put((fn, args))

    def stop(self) -> BaseException | None:
        """Wait for every submitted call; return the first failure (None if all succeeded)."""
        if self._thread.is_alive():
            self._calls.put(None)
            self._thread.join()
        return self._error

    def finish(self) -> None:
        """Wait for every submitted call; raise the first failure."""
        if (error := self.stop()) is not None:
            raise error
