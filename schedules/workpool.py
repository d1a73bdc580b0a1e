"""A fixed pool of threads that takes urgent work first.

The action pool of a lifecycle worker (schedules/firing.py) makes vendor calls and settles their
replies. At the top of the hour every thread should be making a call while any call is waiting:
a reply's settlement (recording log, finish_call.lua) is work that can wait a moment, a start
that is late cannot. ``ThreadPoolExecutor`` is first come, first served; this pool serves every
urgent job before any other, each kind in the order it came.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["PriorityPool"]

T = TypeVar("T")

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class PriorityPool:
    """``threads`` daemon threads (started on the first submit) running submitted callables;
    an ``urgent`` job runs before every job that is not, whenever both wait."""

    def __init__(self, threads: int, name: str = "pool") -> None:
        self.threads = max(1, int(threads))
        self.name = name
        self._urgent: deque[_Job] = deque()
        self._later: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._started = False

    def submit(self, fn: Callable[..., T], /, *args: Any, urgent: bool = True) -> Future[T]:
        """Run ``fn(*args)`` on a pool thread; its result or exception comes in the future."""
        future: Future[T] = Future()
        with self._ready:
            if not self._started:
                self._start()
            (self._urgent if urgent else self._later).append((future, fn, args))
            self._ready.notify()
        return future

    def waiting(self) -> tuple[int, int]:
        """Jobs waiting for a thread: (urgent, other)."""
        with self._ready:
            return len(self._urgent), len(self._later)

    def _start(self) -> None:
        for number in range(self.threads):
            threading.Thread(target=self._run, name=f"{self.name}-{number}", daemon=True).start()
        self._started = True

    def _take(self) -> _Job:
        with self._ready:
            while not self._urgent and not self._later:
                self._ready.wait()
            return self._urgent.popleft() if self._urgent else self._later.popleft()

    def _run(self) -> None:
        while True:
            future, fn, args = self._take()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
