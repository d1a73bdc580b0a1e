"""The watch loop: every discovery worker, once a second, enrols the recorded sessions whose
missing-file judgement is due and checks for callback silence.

Both steps are single atomic scripts on shared Redis state, so any number of loops may run them:
a session is enrolled once, a silence episode raised once. The judgement's room look-ups run in
the look-up loop, at low priority (:mod:`worker.discovery.missing`).
"""

from __future__ import annotations

import threading

from worker.discovery.missing import MissingJudge
from worker.discovery.silence import CallbackSilence
from worker.threads import DaemonLoop

__all__ = ["INTERVAL_S", "WatchLoop"]


#: How often the loop looks (a ZRANGEBYSCORE and one HMGET when idle).
INTERVAL_S = 1.0


class WatchLoop(DaemonLoop):
    """:meth:`step` does one round."""

    thread_name = "discovery-watch"
    loop_name = "watch loop"

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
        while not self._stop.wait(self.interval_s):
            self.attempt(self.step)
