"""A fixed pool of threads that takes urgent work first.

The action pool of a lifecycle worker (schedules/firing.py) makes vendor calls and settles their
replies. At the top of the hour every thread should be making a call while any call is waiting:
a reply's settlement (recording log, finish_call.lua) is work that can wait a moment, a start
that is late cannot. ``ThreadPoolExecutor`` is first come, first served; this pool serves every
urgent job before any other, each kind in the order it came, and starts other work only once no
urgent job is waiting and none has started for ``quiet_s``: the herd's last calls are still
being sent while the first ones are answered, in this process and in the other workers on the
same cores, and a settlement's CPU then delays them (bench/herd.py, four rounds each, two runs:
p99 median 0.96 and 1.00 s with 0.4 s of quiet, 1.12 and 1.11 s with settlements started as soon
as the process's own calls were done). Settlements wait while calls keep starting (a herd's
second or so); nothing waits on them but the bookings' states and follow-on operations.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["QUIET_S", "PriorityPool"]

#: Other work starts once no urgent job has started for this long (and none waits).
QUIET_S = 0.5

T = TypeVar("T")

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class PriorityPool:
    """``threads`` daemon threads (started on the first submit) running submitted callables;
    an ``urgent`` job runs before every job that is not, and a job that is not starts only
    once no urgent job waits and none started for ``quiet_s``."""

    def __init__(self, threads: int, name: str = "pool", quiet_s: float = QUIET_S) -> None:
        self.threads = max(1, int(threads))
        self.name = name
        self.quiet_s = quiet_s
        self._urgent: deque[_Job] = deque()
        self._later: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._started = False
        self._urgent_started = float("-inf")

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
            while True:
                if self._urgent:
                    self._urgent_started = time.monotonic()
                    return self._urgent.popleft()
                if self._later:
                    quiet = self._urgent_started + self.quiet_s - time.monotonic()
                    if quiet <= 0:
                        return self._later.popleft()
                    self._ready.wait(quiet)
                else:
                    self._ready.wait()

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
