"""The watch loop: every discovery worker, once a second, enrols the recorded sessions whose
missing-file judgement is due and checks for callback silence.

Both steps are single atomic scripts on shared Redis state, so any number of loops may run them:
a session is enrolled once, a silence episode raised once. The judgement's room look-ups run in
the look-up loop, at low priority (:mod:`worker.discovery.missing`).
"""

from __future__ import annotations

import logging
import threading

import redis

from worker.discovery.missing import MissingJudge
from worker.discovery.silence import CallbackSilence
from worker.threads import DaemonLoop

__all__ = ["INTERVAL_S", "WatchLoop"]

log = logging.getLogger(__name__)

#: How often the loop looks (a ZRANGEBYSCORE and one HMGET when idle).
INTERVAL_S = 1.0


class WatchLoop(DaemonLoop):
    """:meth:`step` does one round."""

    thread_name = "discovery-watch"

    def __init__(
        self, judge: MissingJudge, silence: CallbackSilence, *, interval_s: float = INTERVAL_S
    ) -> None:
        self.judge = judge
        self.silence = silence
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> tuple[dict[str, str], bool]:
        """Sessions enrolled (id -> verdict), and whether the silence warning was raised."""
        return self.judge.enroll(), self.silence.check()

    def run(self) -> None:
        down = False
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
                if down:
                    log.warning("watch loop: Redis is back")
                    down = False
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if not down:
                    log.warning("watch loop lost Redis (%s); retrying", type(exc).__name__)
                down = True
            except Exception:
                log.exception("watch loop step failed; trying again")
