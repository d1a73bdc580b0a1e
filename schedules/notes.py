"""Vendor replies noted in their room's hash, written by one thread per process in batches.

A herd settles its replies after all its calls (schedules/firing.py), so a worker that dies in
between holds answered calls nobody settled; the attempt that takes such an operation over
settles a noted reply instead of calling the vendor again (schedules/actions.py ``call``).
Written on the calling thread, each note was a Redis round trip between one call and that
thread's next: at the top of the hour, eight of them in a row on each of 64 threads
(bench/herd.py: p99 about 0.15 s later than without notes). Here the calling thread only queues
the note; a writer thread sends everything queued in one pipeline, so a herd's notes cost a few
round trips in all and no thread waits for one.

The window this leaves is the time a note waits in the queue (the length of one round trip
while Redis answers): a worker killed then has its reply repeated by the takeover, as a call
still in flight always is, and the vendor's "already recording" counts as done. A note that
cannot be written (Redis down) is retried for ``retry_s``, then given up with a warning: the
same repeat covers it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import redis

__all__ = ["RETRY_S", "ReplyNotes"]

log = logging.getLogger(__name__)

#: How long a batch of notes that Redis refused is tried again.
RETRY_S = 5.0
_RETRY_PAUSE_S = 0.1


class ReplyNotes:
    """Queue ``HSET key field value`` writes; one daemon thread (started on the first note, and
    again in a forked child) writes them in order, batched in pipelines."""

    def __init__(
        self,
        client: redis.Redis,
        retry_s: float = RETRY_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.retry_s = retry_s
        self._sleep = sleep
        self._ready = threading.Condition()
        self._queue: list[tuple[str, str, str]] = []
        self._writing = 0
        self._pid: int | None = None

    def note(self, key: str, field: str, value: str) -> None:
        """Queue one write; returns at once."""
        with self._ready:
            if self._pid != os.getpid():
                self._start()
            self._queue.append((key, field, value))
            self._ready.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every note queued so far is written or given up; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._ready:
            while self._queue or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ready.wait(left)
        return True

    def _start(self) -> None:
        # A forked child inherits the queue but not the thread: it starts its own.
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="reply-notes", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                batch, self._queue = self._queue, []
                self._writing = len(batch)
            try:
                self._write(batch)
            finally:
                with self._ready:
                    self._writing = 0
                    self._ready.notify_all()

    def _write(self, batch: list[tuple[str, str, str]]) -> None:
        started = time.monotonic()
        while True:
            try:
                pipe = self.client.pipeline(transaction=False)
                for key, field, value in batch:
                    pipe.hset(key, field, value)
                pipe.execute()
                return
            except redis.RedisError as exc:
                if time.monotonic() - started >= self.retry_s:
                    log.warning(
                        "%d vendor reply note(s) not written (%s): their operations are "
                        "called again if their worker dies before settling them",
                        len(batch),
                        type(exc).__name__,
                    )
                    return
                self._sleep(_RETRY_PAUSE_S)
