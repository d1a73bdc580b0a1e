"""``GET /metrics``: the whole deployment's metrics in Prometheus text format.

Counters and histograms come from Redis, where every process records them
(:mod:`worker.metrics.recorder`); gauges are read from Redis and the brokers at scrape time
(:mod:`worker.metrics.gauges`, :mod:`worker.metrics.queues`). So one scrape of any web process
is true for every worker on every machine. Open by default, as exporters are;
``METRICS_BASIC_AUTH=user:password`` asks for HTTP basic auth.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from config.settings import Settings
from worker.metrics.gauges import read_budget, read_snapshot
from worker.metrics.keys import MetricsKeys
from worker.metrics.queues import ask_workers, consumers_of, queue_depths
from worker.metrics.recorder import COUNTERS, HISTOGRAMS

__all__ = ["DeploymentCollector", "register_metrics"]

log = logging.getLogger(__name__)

#: Workers are asked which queues they consume at most this often (a broadcast takes ~1 s).
CONSUMERS_TTL_S = 15.0
Asker = Callable[[], dict[str, list[dict[str, Any]]]]


class DeploymentCollector:
    """A prometheus_client collector whose every scrape reads the deployment's Redis."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        *,
        ask: Asker = ask_workers,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        self.prefix = settings.redis_key_prefix
        self.keys = MetricsKeys(self.prefix)
        self.ask = ask
        self.clock = clock
        self._consumers: tuple[float, dict[str, list[str]]] | None = None

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield from self._histograms()
        yield from self._state()
        yield from self._budget()
        yield from self._queues()

    def _counters(self) -> Iterator[Metric]:
        for name, spec in COUNTERS.items():
            family = CounterMetricFamily(f"anyrtc_{name}", spec.help, labels=spec.labels)
            for field, value in sorted(self.client.hgetall(self.keys.counter(name)).items()):
                family.add_metric(json.loads(field), float(value))
            yield family

    def _histograms(self) -> Iterator[Metric]:
        for name, spec in HISTOGRAMS.items():
            raw = self.client.hgetall(self.keys.histogram(name))
            cumulative, buckets = 0.0, []
            for i, bound in enumerate([*spec.bounds, float("inf")]):
                cumulative += float(raw.get(f"b:{i}", 0))
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family = HistogramMetricFamily(f"anyrtc_{name}", spec.help)
            family.add_metric([], buckets, sum_value=float(raw.get("sum", 0)))
            yield family

    def _state(self) -> Iterator[Metric]:
        snap = read_snapshot(self.client, self.prefix, self.clock())
        bookings = GaugeMetricFamily(
            "anyrtc_bookings", "Bookings by state (every booking kept in Redis)", labels=["state"]
        )
        for state, n in sorted(snap.bookings.items()):
            bookings.add_metric([state], n)
        yield bookings
        yield GaugeMetricFamily(
            "anyrtc_windows_pending",
            "Booked windows waiting for their start (bookings in state scheduled)",
            value=snap.bookings.get("scheduled", 0),
        )
        if snap.next_action_s is not None:
            yield GaugeMetricFamily(
                "anyrtc_next_action_seconds",
                "Seconds until the earliest booked action is due (negative: overdue)",
                value=snap.next_action_s,
            )
        yield GaugeMetricFamily(
            "anyrtc_outbox_pending",
            "File messages claimed and not yet confirmed published",
            value=snap.outbox_pending,
        )
        yield GaugeMetricFamily(
            "anyrtc_booking_events_pending",
            "Booking events (booking.v1) told by the lifecycle and not yet published",
            value=snap.booking_events.waiting,
        )
        if snap.booking_events.oldest_s is not None:
            yield GaugeMetricFamily(
                "anyrtc_booking_events_oldest_seconds",
                "Age of the oldest booking event not yet published",
                value=snap.booking_events.oldest_s,
            )
        yield GaugeMetricFamily(
            "anyrtc_callback_silence",
            "1 while files are found only by polling and no vendor callback came for "
            "CALLBACK_SILENCE_S (see doctor), else 0",
            value=int(snap.callback_silence and self.settings.callbacks_expected == "on"),
        )
        letters = GaugeMetricFamily(
            "anyrtc_dead_letters", "Dead letters kept, by whether replayed", labels=["replayed"]
        )
        letters.add_metric(["false"], snap.dead_letters)
        letters.add_metric(["true"], snap.dead_letters_replayed)
        yield letters
        callbacks = CounterMetricFamily(
            "anyrtc_callbacks",
            "Vendor callbacks by verdict (accepted, rejected)",
            labels=["verdict"],
        )
        for verdict, n in sorted(snap.callbacks.items()):
            callbacks.add_metric([verdict], n)
        yield callbacks

    def _budget(self) -> Iterator[Metric]:
        s = self.settings
        window = s.query_rate_period_s + s.query_rate_margin_s
        budget = read_budget(self.client, self.prefix, s.anyrtc_app_id, s.query_rate_limit, window)
        yield GaugeMetricFamily(
            "anyrtc_query_budget_used", "Query slots taken in the current window", value=budget.used
        )
        yield GaugeMetricFamily(
            "anyrtc_query_budget_limit",
            "Query slots per window (QUERY_RATE_LIMIT)",
            value=budget.limit,
        )

    def _queues(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "anyrtc_queue_messages",
            "Messages waiting on a Celery queue; consumed=false: no answering worker consumes it",
            labels=["queue", "consumed"],
        )
        try:
            depths = queue_depths()
        except Exception as exc:
            log.warning("queue depths unavailable: %s", type(exc).__name__)
            return
        consumers = self._consumers_now()
        for queue, depth in depths.items():
            family.add_metric([queue, "true" if consumers.get(queue) else "false"], depth)
        yield family

    def _consumers_now(self) -> dict[str, list[str]]:
        now = self.clock()
        if self._consumers is None or now - self._consumers[0] > CONSUMERS_TTL_S:
            try:
                self._consumers = (now, consumers_of(self.ask()))
            except Exception as exc:
                log.warning("could not ask the workers for their queues: %s", type(exc).__name__)
                return {}
        return self._consumers[1]


def _authorized(expected: str | None) -> bool:
    if not expected:
        return True
    auth = request.authorization
    given = f"{auth.username}:{auth.password}" if auth and auth.type == "basic" else ""
    return hmac.compare_digest(given.encode(), expected.encode())


def register_metrics(app: Flask, settings: Settings, client: redis.Redis) -> None:
    """Serve ``/metrics`` on ``app`` for the deployment of ``settings``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector(settings, client))  # type: ignore[arg-type]
    secret = settings.metrics_basic_auth
    expected = secret.get_secret_value() if secret else None

    @app.get("/metrics")
    def metrics() -> Response:
        if not _authorized(expected):
            return Response(
                "authentication required\n",
                401,
                {"WWW-Authenticate": 'Basic realm="anyrtc-recorder metrics"'},
            )
        try:
            body = generate_latest(registry)
        except redis.RedisError as exc:
            return Response(f"Redis unavailable: {type(exc).__name__}\n", 503)
        return Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST})
