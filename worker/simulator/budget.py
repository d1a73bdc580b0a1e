"""The vendor's query budget: a sliding window of admitted calls per app id."""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindowBudget"]


class SlidingWindowBudget:
    """At most ``limit`` admissions per ``period`` seconds per key (not thread-safe by itself).

    A call admitted at ``t`` occupies its slot during ``[t, t + period)``: the slot frees exactly
    when the oldest admission leaves the window. Limit and period are passed on every call so a
    runtime config change takes effect at once.
    """

    def __init__(self) -> None:
        self._admitted: dict[str, deque[float]] = {}

    def try_admit(self, key: str, now: float, limit: int, period: float) -> bool:
        """Record an admission at ``now`` and return True, or return False if the window is full."""
        window = self._expire(key, now, period)
        if len(window) >= limit:
            return False
        window.append(now)
        return True

    def retry_after(self, key: str, now: float, limit: int, period: float) -> float:
        """Seconds from ``now`` until one more call would be admitted (0 if it would be now)."""
        window = self._expire(key, now, period)
        if len(window) < limit:
            return 0.0
        if limit <= 0:
            return float("inf")
        # The (len - limit + 1)-th oldest admission must leave before a slot frees.
        return window[len(window) - limit] + period - now

    def clear(self) -> None:
        """Forget every admission."""
        self._admitted.clear()

    def _expire(self, key: str, now: float, period: float) -> deque[float]:
        window = self._admitted.setdefault(key, deque())
        # Compare "t + period <= now" (not "t <= now - period") so a slot frees at exactly
        # t + period even with binary floats.
        while window and window[0] + period <= now:
            window.popleft()
        return window
