"""Callback silence: files keep being found by polling while the vendor's callbacks never come.

Usually the vendor console's callback URL is wrong or missing its ``?token=``, the token does
not match ``CALLBACK_TOKEN``, or a firewall keeps the vendor from reaching the web process.
Files are still delivered (by the poll, after ``CALLBACK_GRACE_S``) but without the callback's
fields, so the operator must hear of it.

State is one Redis hash (``silence``), so every process agrees: each file message that goes out
without its callback (source ``poll`` or ``room``) counts towards an episode, each callback ends
it (``silence_callback.lua``). The watch loop of every discovery worker checks once a second
(``silence_check.lua``): at least :data:`QUIET_FILES_MIN` such files and no callback for
``CALLBACK_SILENCE_S`` since the first of them raises the warning once per episode; the process
whose call raised (or ended) it logs it. ``doctor`` and ``/metrics`` read :meth:`status`. With
``CALLBACKS_EXPECTED=off`` nothing is raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from worker.discovery.keys import DiscoveryKeys
from worker.redis import scripts_for

__all__ = ["CAUSES", "QUIET_FILES_MIN", "CallbackSilence", "SilenceStatus"]

log = logging.getLogger(__name__)

#: Files without a callback an episode needs: one lost callback is the vendor's, not a setup's.
QUIET_FILES_MIN = 2
#: What to check, in the log line and doctor's warning.
CAUSES = (
    "check the callback URL in the vendor console (this web process's /AR/V1/av with "
    "?token=<CALLBACK_TOKEN>), that its token matches CALLBACK_TOKEN (rejected callbacks: "
    "anyrtc-recorder rejects), and that no firewall or proxy keeps the vendor from reaching it; "
    "set CALLBACKS_EXPECTED=off if the console sends no callbacks on purpose"
)
_QUIET_SOURCES = ("poll", "room")


@dataclass(frozen=True)
class SilenceStatus:
    """What the silence hash says now (epoch seconds; None when unknown)."""

    warned: bool
    warned_at: float | None
    quiet_since: float | None
    quiet_files: int
    last_callback_at: float | None


class CallbackSilence:
    """Counts files without callbacks, ends episodes on callbacks, raises the warning."""

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        *,
        silence_s: float,
        expected: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.key = keys.silence
        self.silence_ms = int(silence_s * 1000)
        self.expected = expected
        self.clock = clock
        scripts = scripts_for(client, "worker.discovery.lua")
        self._check = scripts.silence_check
        self._callback = scripts.silence_callback

    def file_delivered(self, body: Mapping[str, Any], source: str) -> None:
        """A file message went out; one found by poll or look-up came without its callback."""
        if source not in _QUIET_SOURCES:
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(self.key, "quiet_since_ms", self._now_ms())
        pipe.hincrby(self.key, "quiet_files", 1)
        pipe.execute()

    def callback_seen(self) -> bool:
        """A callback arrived; True (and one log line) when it ended a raised episode."""
        if not int(self._callback(keys=[self.key], args=[self._now_ms()])):
            return False
        log.warning("vendor callbacks arrive again: the callback-silence warning is cleared")
        return True

    def check(self) -> bool:
        """True (and one log line) when this call raised the warning."""
        if not self.expected:
            return False
        raised = self._check(
            keys=[self.key], args=[self._now_ms(), self.silence_ms, QUIET_FILES_MIN]
        )
        if not int(raised):
            return False
        status = self.status()
        log.warning(
            "no vendor callback for %d s while %d files were found only by polling: %s",
            int(self.silence_ms / 1000),
            status.quiet_files,
            CAUSES,
        )
        return True

    def status(self) -> SilenceStatus:
        data = self.client.hgetall(self.key)

        def seconds(name: str) -> float | None:
            value = data.get(name)
            return int(value) / 1000 if value else None

        warned_at = seconds("warned_ms")
        return SilenceStatus(
            warned=self.expected and warned_at is not None,
            warned_at=warned_at,
            quiet_since=seconds("quiet_since_ms"),
            quiet_files=int(data.get("quiet_files") or 0),
            last_callback_at=seconds("last_callback_ms"),
        )

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)
