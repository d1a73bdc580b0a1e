"""Wiring: one :class:`Discovery` per process, built from Settings; the tasks call into it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis
from pydantic import ValidationError

from config.settings import Settings
from schedules.keys import LifecycleKeys
from schedules.recording_log import RecordingLog
from worker.anyrtc.models import CallbackPayload
from worker.discovery.booking_outbox import BookingOutbox, BookingTeller
from worker.discovery.correlate import Correlator
from worker.discovery.fanout import FanOut, Outbox, Publisher
from worker.discovery.heartbeat import Heartbeat, HeldPublisher
from worker.discovery.intake import CallbackIntake
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.limiter import LOOKUP_RESERVE, SlidingWindowLimiter, gated_client
from worker.discovery.lookup_loop import LookupLoop
from worker.discovery.lookups import LookupRunner, RoomLookups
from worker.discovery.missing import MissingJudge
from worker.discovery.ops import OpsLog
from worker.discovery.poller import Poller
from worker.discovery.record import Observation
from worker.discovery.registry import FileRegistry
from worker.discovery.resume_loop import ResumeLoop
from worker.discovery.settle import Enqueue, Settler
from worker.discovery.silence import CallbackSilence
from worker.discovery.sweep import Sweeper
from worker.discovery.watch_loop import WatchLoop
from worker.redis import get_redis

__all__ = ["Discovery", "callback_summary"]

log = logging.getLogger(__name__)

#: Polls per run before the poll re-queues itself (keeps one run short with a large budget).
MAX_PAGES_PER_RUN = 20
#: An acknowledged callback whose task has not finished after this long is handled by the poll.
MIN_INTAKE_GRACE_S = 10.0


def callback_summary(payload: dict[str, Any]) -> str:
    """A short, secret-free description of a callback for logs and Flower."""
    return f"room={payload.get('groupId')!r} file={payload.get('fileName')!r}"


class Discovery:
    """Every discovery component of this process, configured from ``settings``.

    ``clock`` (epoch seconds) is the one time source of every component: sightings, claims,
    leases, deadlines, poll windows and log stamps. Only the limiter keeps Redis server time
    (see :mod:`worker.discovery.limiter`).
    """

    def __init__(
        self,
        settings: Settings,
        enqueue: Enqueue,
        *,
        client: redis.Redis | None = None,
        publisher: Publisher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.client = client or get_redis(settings.redis_url)
        self.keys = DiscoveryKeys(settings.redis_key_prefix)
        secrets = [settings.anyrtc_vod_token.get_secret_value()]
        if settings.callback_token is not None:
            secrets.append(settings.callback_token.get_secret_value())
        self.ops = OpsLog(self.client, self.keys, secrets, clock=clock)
        self.intake = CallbackIntake(self.client, self.keys, clock=clock)
        self.intake_grace_s = max(2 * settings.poll_every_s, MIN_INTAKE_GRACE_S)
        self.limiter = SlidingWindowLimiter.from_settings(settings, self.client)
        self.poll_vendor = gated_client(settings, self.limiter)
        self.lookup_vendor = gated_client(settings, self.limiter, reserve=LOOKUP_RESERVE)
        expected_ms = int(settings.expected_transcode_s * 1000)
        poll_every_ms = int(settings.poll_every_s * 1000)
        self.registry = FileRegistry(
            self.client,
            self.keys,
            expected_transcode_s=settings.expected_transcode_s,
            recheck_s=settings.poll_every_s,
        )
        recording_log = RecordingLog(self.client, settings.redis_key_prefix)
        self.correlator = Correlator(recording_log)
        # Every lease of discovery work (poll lock, outbox claim, room look-up) is this short;
        # the heartbeat keeps what this process is working on from expiring.
        lease_s = settings.discovery_lease_s
        self.heartbeat = Heartbeat(self.client, lease_s, clock=clock)
        publisher = publisher or Publisher.from_settings(settings)
        self.publisher = HeldPublisher(publisher, self.heartbeat, self.keys.outbox_pending)
        self.outbox = Outbox(self.client, self.keys, lease_s=lease_s, clock=clock)
        # Duck-typed: the wrapper is the Publisher for everything but publish.
        self.fanout = FanOut(self.outbox, self.publisher)  # type: ignore[arg-type]
        # Booking events have an outbox of their own (the lifecycle's), leased by its loop.
        self.teller = BookingTeller(
            BookingOutbox(self.client, LifecycleKeys(settings.redis_key_prefix), clock=clock),
            publisher,
        )
        self.lookups = RoomLookups(
            self.client, self.keys, ttl_s=settings.expected_transcode_s, clock=clock
        )
        self.settler = Settler(
            self.client,
            self.keys,
            self.registry,
            self.correlator,
            self.fanout,
            self.lookups,
            self.ops,
            callback_grace_ms=int(settings.callback_grace * 1000),
            lookup_deadline_ms=expected_ms,
            transcode_bound_ms=expected_ms,
            clock=clock,
        )
        self.poller = Poller(
            self.client,
            self.keys,
            self.poll_vendor,
            self.registry,
            self.settler,
            self.ops,
            overlap_ms=int(settings.poll_overlap_s * 1000),
            page_max=settings.poll_page_max,
            expected_transcode_ms=expected_ms,
            window_s=self.limiter.window_s,
            lock_ttl_s=lease_s,
            max_pages_per_run=MAX_PAGES_PER_RUN,
            retry_marker_slack_s=max(5.0, settings.poll_every_s),
            heartbeat=self.heartbeat,
            clock=clock,
        )
        self.runner = LookupRunner(
            self.lookup_vendor,
            self.registry,
            self.settler,
            self.lookups,
            self.ops,
            page_max=settings.poll_page_max,
            window_s=self.limiter.window_s,
            clock=clock,
        )
        # Missing files and callback silence (issue 14): wired in missing.py / silence.py.
        self.missing = MissingJudge(
            self.client,
            self.keys,
            recording_log,
            self.runner,
            self.fanout,
            self.heartbeat,
            missing_after_s=settings.missing_after,
            lease_s=lease_s,
            backoff_base_s=settings.retry_backoff_base_s,
            backoff_max_s=settings.retry_backoff_max_s,
            clock=clock,
        )
        self.silence = CallbackSilence(
            self.client,
            self.keys,
            silence_s=settings.callback_silence_s,
            expected=settings.callbacks_expected == "on",
            clock=clock,
        )
        self.fanout.on_file.append(self.silence.file_delivered)
        self.watch_loop = WatchLoop(self.missing, self.silence)
        self.lookup_loop = LookupLoop(
            self.lookups,
            self.runner,
            lease_s=lease_s,
            backoff_base_s=settings.retry_backoff_base_s,
            backoff_max_s=settings.retry_backoff_max_s,
            heartbeat=self.heartbeat,
            low=self.missing,
        )
        self.sweeper = Sweeper(
            self.client,
            self.keys,
            self.registry,
            self.correlator,
            self.settler,
            self.outbox,
            self.publisher,
            self.lookups,
            self.ops,
            enqueue,
            await_lease_ms=max(poll_every_ms, 1000),
            check_every_ms=max(expected_ms, math.ceil(self.limiter.window_s * 1000)),
            clock=clock,
        )
        self.resume_loop = ResumeLoop(
            self.client,
            self.keys,
            self.fanout,
            enqueue,
            interval_s=self.heartbeat.interval_s,
            deliver_waits=self.sweeper.deliver_due_waits,
        )

    def callback(self, payload: dict[str, Any]) -> str:
        """Handle one acknowledged callback body (as the web app stored and enqueued it); its
        intake entry goes once the file is settled, or at once when it cannot be read."""
        context = {"hosts": self.settings.download_hosts}
        try:
            parsed = CallbackPayload.model_validate(payload, context=context)
        except ValidationError as exc:
            # The web app validated it already; only a hand-made task gets here.
            errors = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            self.ops.error("callback-task", f"invalid callback payload: {errors}")
            self.intake.done(payload)
            return "invalid"
        self.ops.incr("callback_accepted")
        self.silence.callback_seen()
        obs = Observation.from_callback(parsed, int(self.clock() * 1000))
        verdict = self.settler.sighted(obs)
        self.intake.done(payload)
        return verdict

    def drain_intake(self) -> int:
        """Handle acknowledged callbacks whose task never finished (lost enqueue, killed
        worker); returns how many were found."""
        stale = self.intake.stale(self.intake_grace_s)
        for payload in stale:
            self.callback(payload)
        if stale:
            log.warning("handled %d acknowledged callbacks left in the intake", len(stale))
        return len(stale)
