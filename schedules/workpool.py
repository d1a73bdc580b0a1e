"""A fixed pool of threads that takes urgent work first.

The action pool of a lifecycle worker (schedules/firing.py) makes vendor calls and settles their
replies. At the top of the hour every thread should be making a call while any call is waiting:
a reply's settlement (recording log, finish_call.lua) is work that can wait a moment, a start
that is late cannot. ``ThreadPoolExecutor`` is first come, first served; this pool serves every
urgent job before any other, each kind in the order it came, and starts other work only once no
urgent job is waiting *or running*: the herd's last calls are still being sent (and the
process's CPU is what sends them) while the first ones are answered, and a settlement started
then would delay them. A call that hangs (up to the vendor timeout) holds other work back for
``URGENT_HOLD_S`` at most.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["URGENT_HOLD_S", "PriorityPool"]

#: Longest time other work waits for urgent jobs that are running (none waiting), counted from
#: the start of the last one: long enough for a herd's last calls to be sent, short beside a
#: hung call's timeout.
URGENT_HOLD_S = 0.5

T = TypeVar("T")

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class PriorityPool:
    """``threads`` daemon threads (started on the first submit) running submitted callables;
    an ``urgent`` job runs before every job that is not, and a job that is not starts only
    while no urgent job waits or runs (or none started for ``hold_s``)."""

    def __init__(self, threads: int, name: str = "pool", hold_s: float = URGENT_HOLD_S) -> None:
        self.threads = max(1, int(threads))
        self.name = name
        self.hold_s = hold_s
        self._urgent: deque[_Job] = deque()
        self._later: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._started = False
        self._urgent_running = 0
        self._urgent_started = 0.0

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

    def _take(self) -> tuple[_Job, bool]:
        with self._ready:
            while True:
                if self._urgent:
                    self._urgent_running += 1
                    self._urgent_started = time.monotonic()
                    return self._urgent.popleft(), True
                if self._later:
                    held = self._urgent_started + self.hold_s - time.monotonic()
                    if self._urgent_running == 0 or held <= 0:
                        return self._later.popleft(), False
                    self._ready.wait(held)
                else:
                    self._ready.wait()

    def _run(self) -> None:
        while True:
            (future, fn, args), urgent = self._take()
            try:
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = fn(*args)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            finally:
                if urgent:
                    with self._ready:
                        self._urgent_running -= 1
                        if self._urgent_running == 0:
                            self._ready.notify_all()
