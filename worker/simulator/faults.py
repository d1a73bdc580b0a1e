"""Fault injection: which misbehaviour, if any, a vendor call gets.

Decisions only; the HTTP layer carries them out (sleep, close the socket, odd statuses).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from worker.simulator.config import QUERY_ENDPOINTS, RECORD_ENDPOINTS, FaultConfig

__all__ = ["FaultInjector", "FaultPlan"]


@dataclass(frozen=True)
class FaultPlan:
    """One call's fault.

    ``kind``: ``drop`` (close without answer), ``hang`` (process, then wait ``hang_s``),
    ``error`` (501 / HTTP 500), ``http_error`` (HTTP 503 page), ``http_status`` (forced HTTP
    status), ``code`` (forced query code) or ``result`` (forced start/stop result).
    """

    kind: str
    hang_s: float = 0.0
    code: int | None = None
    result: str | None = None
    http_status: int | None = None

    @property
    def label(self) -> str:
        """Short journal wording, e.g. ``fault: drop``."""
        if self.kind == "code":
            return f"fault: code {self.code}"
        if self.kind == "result":
            return f"fault: result {self.result}"
        if self.kind in ("http_status", "http_error"):
            return f"fault: http {self.http_status}"
        return f"fault: {self.kind}"


class FaultInjector:
    """Draws faults from its own seeded RNG so other randomness does not shift the sequence."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(None if seed is None else f"faults:{seed}")

    def reseed(self, seed: int | None) -> None:
        """Restart the fault sequence (called on reset)."""
        self._rng = random.Random(None if seed is None else f"faults:{seed}")

    def latency(self, faults: FaultConfig, endpoint: str) -> float:
        """Seconds to wait before answering ``endpoint``."""
        if not _applies(faults, endpoint) or (faults.latency_s <= 0 and faults.jitter_s <= 0):
            return 0.0
        jitter = self._rng.uniform(0.0, faults.jitter_s) if faults.jitter_s > 0 else 0.0
        return faults.latency_s + jitter

    def plan(self, faults: FaultConfig, endpoint: str) -> FaultPlan | None:
        """The fault for this call: a matching ``inject_next`` entry (consumed) or a random one.

        Mutates ``faults.inject_next``; the caller holds the state lock.
        """
        for index, entry in enumerate(faults.inject_next):
            if _matches(entry, endpoint):
                del faults.inject_next[index]
                return _from_injection(entry, faults.hang_s)
        if not _applies(faults, endpoint):
            return None
        rates = (faults.drop_rate, faults.timeout_rate, faults.http_error_rate, faults.error_rate)
        if not any(rates):
            return None
        # One draw per call, rates stacked in a fixed order: with the same seed and the same
        # calls, the same calls fail.
        draw = self._rng.random()
        edge = 0.0
        for kind, rate in zip(("drop", "hang", "http_error", "error"), rates, strict=True):
            edge += rate
            if draw < edge:
                return _plan_for(kind, faults.hang_s)
        return None


def _applies(faults: FaultConfig, endpoint: str) -> bool:
    return faults.endpoints is None or endpoint in faults.endpoints


def _matches(entry: dict[str, object], endpoint: str) -> bool:
    if entry.get("endpoint", "*") not in ("*", endpoint):
        return False
    # A wildcard entry only fits the endpoints its outcome makes sense for.
    if "code" in entry:
        return endpoint in QUERY_ENDPOINTS
    if "result" in entry:
        return endpoint in RECORD_ENDPOINTS
    return True


def _from_injection(entry: dict[str, object], hang_s: float) -> FaultPlan:
    if "code" in entry:
        return FaultPlan("code", code=int(str(entry["code"])))
    if "result" in entry:
        return FaultPlan("result", result=str(entry["result"]))
    if "http_status" in entry:
        status = int(str(entry["http_status"]))
        return FaultPlan("http_status", http_status=status)
    plan = _plan_for(str(entry["fault"]), hang_s)
    return FaultPlan(plan.kind, plan.hang_s, http_status=plan.http_status)


def _plan_for(kind: str, hang_s: float) -> FaultPlan:
    if kind == "hang":
        return FaultPlan("hang", hang_s=hang_s)
    if kind == "http_error":
        return FaultPlan("http_error", http_status=503)
    return FaultPlan(kind)
