"""What the lifecycle scripts answer, as values: the results :mod:`schedules.store` returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schedules.keys import parse_action

__all__ = ["ActionResult", "CallGrant", "Claim", "EventResult", "Settlement"]


@dataclass(frozen=True)
class EventResult:
    """What a booking event did: ``verdict`` is applied, unchanged, stale or ignored."""

    verdict: str
    state: str
    next_action: str
    next_at: float | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Claim:
    """One dispatcher claim: (action id, due time) pairs now leased to the caller.

    ``next_due`` is the earliest due time still waiting, ``next_lease`` the earliest lease end
    in flight (either may need the dispatcher's attention next).
    """

    due: list[tuple[str, float]]
    reissued: int
    next_due: float | None
    next_lease: float | None

    @property
    def actions(self) -> list[str]:
        return [action for action, _ in self.due]


@dataclass(frozen=True)
class CallGrant:
    """Permission (or not) to call the vendor for one room operation attempt.

    ``verdict``: call (the caller owns the attempt), busy, stale, abandon, plus the action
    verdicts of :class:`ActionResult` when it comes from a booking action.
    """

    verdict: str
    op_id: str = ""
    kind: str = ""
    params: dict[str, Any] | None = None
    attempt: int = 0
    uncertain: bool = False
    token: str = ""

    @property
    def room_id(self) -> str:
        return parse_action(self.op_id).subject if self.op_id else ""


@dataclass(frozen=True)
class ActionResult:
    """What applying a booking action did; ``grant`` is set when a vendor call must follow."""

    verdict: str
    detail: str = ""
    grant: CallGrant | None = None


@dataclass(frozen=True)
class Settlement:
    """The outcome of finish_call; ``next_grant`` is set when another operation follows."""

    verdict: str
    kind: str
    bookings: list[str]
    next_grant: CallGrant | None
    retry_at: float | None
