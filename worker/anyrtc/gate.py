"""The one seam every query call passes through before it is sent.

The global Redis limiter implements :class:`QueryGate`; the default lets every call through.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["OpenGate", "QueryGate"]


class QueryGate(Protocol):
    """Admits query calls of one app id against the shared budget."""

    def before_query(self, app_id: str, endpoint: str) -> None:
        """Return when a call may be sent now; raise BudgetExhausted (with retry_after) if not."""

    def after_query(self, app_id: str, endpoint: str) -> None:
        """The admitted attempt has ended, whatever its outcome (answer, error, timeout)."""

    def on_rate_limited(self, app_id: str, endpoint: str) -> None:
        """The vendor answered 299: the budget is closed for a whole window."""

    def on_answer(self, endpoint: str, outcome: str, code: str) -> None:
        """A query ended: ``outcome`` ok, retry or fail, with the vendor's code (metrics)."""


class OpenGate:
    """Admits everything: for tools and tests that do not share a budget."""

    def before_query(self, app_id: str, endpoint: str) -> None:
        return None

    def after_query(self, app_id: str, endpoint: str) -> None:
        return None

    def on_rate_limited(self, app_id: str, endpoint: str) -> None:
        return None

    def on_answer(self, endpoint: str, outcome: str, code: str) -> None:
        return None
