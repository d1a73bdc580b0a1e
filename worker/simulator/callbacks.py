"""The vendor's callbacks: a daemon thread that posts each finished file to ``callback_url``."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request

from worker.simulator.filestore import CallbackJob
from worker.simulator.state import SimulatorState

__all__ = ["CallbackSender"]

log = logging.getLogger(__name__)

# Callbacks go to loopback or a LAN receiver; an HTTP(S)_PROXY from the environment must not
# capture them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class CallbackSender:
    """Every ``interval_s`` asks the state which callbacks are due and sends them, one by one.

    No retries, like the vendor as documented; every attempt is journaled.
    """

    def __init__(self, state: SimulatorState, interval_s: float = 0.05) -> None:
        self._state = state
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the daemon thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="anyrtc-sim-callbacks", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 6.0) -> None:
        """Stop the thread; an attempt under way may take up to its own timeout to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def run_once(self) -> int:
        """Send every due callback now; return how many attempts were made."""
        attempts = 0
        for job in self._state.due_callbacks():
            for copy_number in range(1, job.copies + 1):
                if self._stop.is_set() or job.generation != self._state.generation:
                    return attempts
                self._send(job, copy_number)
                attempts += 1
        return attempts

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.run_once()
            except Exception:
                # One bad round must not end the thread: later files still need callbacks.
                log.exception("callback round failed")

    def _send(self, job: CallbackJob, copy_number: int) -> None:
        arrival = self._state.clock()
        started = time.monotonic()
        data = json.dumps(job.body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            job.url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        status: int | None = None
        reply = ""
        try:
            with _OPENER.open(request, timeout=job.timeout_s) as response:
                status = response.status
                reply = response.read(500).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status = exc.code
            reply = exc.read(500).decode("utf-8", "replace")
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reply = f"{type(exc).__name__}: {exc}"
        verdict = f"callback {status}" if status is not None else f"callback error: {reply}"
        entry = self._state.journal.add(
            time=arrival,
            endpoint="callback",
            client_ip=None,
            params=job.body,
            verdict=verdict,
            secrets=self._state.secrets,
            code=status,
            result=reply,
            target=job.url,
            copy=copy_number,
            fileid=job.fileid,
        )
        self._state.journal.finish(entry, time.monotonic() - started)
        log.info("callback %s copy %d -> %s", job.fileid, copy_number, entry["verdict"])  # scrubbed
