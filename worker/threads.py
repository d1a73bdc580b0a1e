"""The one way a background loop of this product starts and stops its daemon thread.

The lifecycle's lease heartbeat and discovery's look-up, resume, heartbeat and booking loops
each run in one daemon thread per process, started from a worker hook that may fire more than
once; this keeps that to one thread each and lets a test stop it.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

__all__ = ["DaemonLoop"]

# Starting is rare (once per process and loop); one lock for all keeps two hooks from starting
# the same loop twice.
_starting = threading.Lock()


class DaemonLoop(abc.ABC):
    """Mixin: ``start()`` runs :meth:`run` in one daemon thread named :attr:`thread_name`;
    ``stop()`` sets ``_stop`` and joins it. The class sets ``_stop`` (an Event that ``run``
    watches) and ``_thread`` (None) in its constructor."""

    thread_name = "loop"
    #: How the log lines of :meth:`attempt` name the loop.
    loop_name = "loop"
    _stop: threading.Event
    _thread: threading.Thread | None
    _redis_down = False

    @abc.abstractmethod
    def run(self) -> None:
        """The loop; it returns soon after ``_stop`` is set."""

    def start(self) -> None:
        with _starting:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def attempt(self, step: Callable[[], Any]) -> tuple[bool, Any]:
        """Run one step of the loop: ``(True, its result)``, or ``(False, None)`` when it
        failed. A lost Redis is logged once when lost and once when back, not at every step (a
        loop retries every second or so), and no failure ends the loop."""
        log = logging.getLogger(type(self).__module__)
        try:
            result = step()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if not self._redis_down:
                log.warning("%s lost Redis (%s); retrying", self.loop_name, type(exc).__name__)
            self._redis_down = True
            return False, None
        except Exception:
            log.exception("%s step failed; trying again", self.loop_name)
            return False, None
        if self._redis_down:
            log.warning("%s: Redis is back", self.loop_name)
            self._redis_down = False
        return True, result
