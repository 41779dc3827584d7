"""Calls made on another thread while a test holds permits, and polling for a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

#: The longest a test waits for something that should happen at once.
PATIENCE = 5.0

T = TypeVar("T")


def until(condition: Callable[[], bool]) -> None:
    """Wait (polling) until ``condition()`` holds; fail after PATIENCE seconds."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.002)


class InThread(Generic[T]):
    """``call()`` made by another thread (a request, say), so the test can go on meanwhile."""

    def __init__(self, call: Callable[[], T]) -> None:
        self.response: T | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.response = call()
            except BaseException as exc:  # reported by result()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self) -> T:
        self.thread.join(PATIENCE)
        assert not self.thread.is_alive(), "the call never finished"
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response
