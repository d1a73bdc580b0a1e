"""Recording counters and histograms in Redis: what the hooks in other packages call.

Each hook is one call (``Metrics(client, prefix).vendor_call(...)``) and never fails its caller:
a Redis error loses the observation and logs a warning, because bookkeeping must not stop a
recording or a delivery. Values are kept per deployment, not per process, so the web process can
export the whole deployment's counts; Prometheus computes rates from them as from any counter.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from worker.anyrtc import results
from worker.discovery.message import ROUTING_KEYS
from worker.metrics.keys import MetricsKeys

__all__ = [
    "COUNTERS",
    "HISTOGRAMS",
    "OTHER_CODE",
    "CounterSpec",
    "HistogramSpec",
    "Metrics",
    "bucket_index",
    "code_label",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CounterSpec:
    help: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class HistogramSpec:
    help: str
    bounds: tuple[float, ...]


#: Counters by their name without the ``anyrtc_`` prefix and ``_total`` suffix.
COUNTERS: dict[str, CounterSpec] = {
    "vendor_calls": CounterSpec(
        "Calls to the vendor by endpoint, outcome (ok, already, retry, fail) and vendor code",
        ("endpoint", "outcome", "code"),
    ),
    "files_delivered": CounterSpec(
        "File messages published downstream by source (callback, poll, room) and status",
        ("source", "status"),
    ),
}

#: Histograms by their name without the ``anyrtc_`` prefix.
HISTOGRAMS: dict[str, HistogramSpec] = {
    "action_lateness_seconds": HistogramSpec(
        "First vendor attempt of a booking's start or stop minus its due time",
        (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
    ),
    "query_wait_seconds": HistogramSpec(
        "Wait the query budget imposed on a query attempt (0 when admitted at once)",
        (0.0, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
    ),
    "file_delivery_lag_seconds": HistogramSpec(
        "File message published minus the moment its final status was seen",
        (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
    ),
}


#: ``result`` strings of start/stop a ``code`` label may carry as they are.
_KNOWN_RESULTS = frozenset(
    getattr(results, name) for name in results.__all__ if name.isupper()
)
#: Anything else the vendor answers shares this label value.
OTHER_CODE = "other"


def code_label(code: str) -> str:
    """The ``code`` label of a vendor call: a numeric code of the query endpoints, a start/stop
    ``result`` string the product knows, ``""`` when there was no answer, else ``other``.

    start/stop answer free text, and each distinct label value is a new time series for ever:
    an unbounded label would let the vendor's wording grow every scrape without limit."""
    numeric = code.isascii() and code.isdigit() and len(code) <= 4
    if code == "" or code in _KNOWN_RESULTS or numeric:
        return code
    return OTHER_CODE


def bucket_index(bounds: Sequence[float], value: float) -> int:
    """The bucket ``value`` falls in: the first bound >= value; ``len(bounds)`` is +Inf."""
    return bisect.bisect_left(bounds, value)


class Metrics:
    """The deployment's counters and histograms under one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = MetricsKeys(prefix)

    def count(self, name: str, labels: Sequence[str], amount: int = 1) -> None:
        """Add ``amount`` to counter ``name`` at these label values (in the spec's order)."""
        field = json.dumps([str(v) for v in labels])
        self._run(name, lambda pipe: pipe.hincrby(self.keys.counter(name), field, amount))

    def observe(self, name: str, value: float) -> None:
        """One observation of histogram ``name``."""
        key = self.keys.histogram(name)
        index = bucket_index(HISTOGRAMS[name].bounds, value)

        def write(pipe: redis.client.Pipeline) -> None:
            pipe.hincrby(key, f"b:{index}", 1)
            pipe.hincrby(key, "count", 1)
            pipe.hincrbyfloat(key, "sum", value)

        self._run(name, write)

    def vendor_call(self, endpoint: str, outcome: str, code: str) -> None:
        self.count("vendor_calls", (endpoint, outcome, code_label(code)))

    def lateness(self, seconds: float) -> None:
        self.observe("action_lateness_seconds", max(seconds, 0.0))

    def query_wait(self, seconds: float) -> None:
        self.observe("query_wait_seconds", max(seconds, 0.0))

    def delivered(self, source: str, body: Mapping[str, Any], now: float) -> None:
        """A file message was published: count it, and its lag since ``discovered_at`` (when
        its final status was seen)."""
        status = body.get("status")
        name = ROUTING_KEYS.get(status, str(status)).rsplit(".", 1)[-1]  # type: ignore[call-overload]
        self.count("files_delivered", (source, name))
        seen = body.get("discovered_at")
        if isinstance(seen, str):
            try:
                lag = now - datetime.fromisoformat(seen).timestamp()
            except ValueError:
                return
            self.observe("file_delivery_lag_seconds", max(lag, 0.0))

    def _run(self, name: str, write: Callable[[redis.client.Pipeline], object]) -> None:
        try:
            pipe = self.client.pipeline(transaction=True)
            write(pipe)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("metric %s not recorded: %s", name, type(exc).__name__)
