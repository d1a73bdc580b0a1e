"""The query endpoints' rules: the vendor's check order, the listing, and how faults show."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from worker.anyrtc.signing import sign
from worker.simulator.budget import SlidingWindowBudget
from worker.simulator.config import SimulatorConfig
from worker.simulator.faults import FaultPlan
from worker.simulator.recordings import RecordedFile
from worker.simulator.responses import Outcome, html_outcome, json_outcome
from worker.simulator.validation import QueryRequest

__all__ = [
    "SUCCESS_MESSAGES",
    "check_query",
    "forced_code",
    "listing",
    "media_type",
    "query_outcome",
    "query_verdict",
]

SUCCESS_MESSAGES = {
    "getVodListByTime": "get video list success",
    "getVodInfoByRoomId": "get video info success",
}
MIN_EPOCH_MS = 10**12  # anything smaller is a seconds (or garbage) timestamp


def check_query(
    cfg: SimulatorConfig, budget: SlidingWindowBudget, request: QueryRequest, now: float
) -> tuple[int, str]:
    """``(code, detail)`` after app, timestamp, signature and budget checks, in that order.

    Only a call that passes everything takes a budget slot.
    """
    if request.app_id in cfg.deleted_apps:
        return 284, ""
    token = cfg.apps.get(request.app_id)
    if token is None:
        return 247, ""
    skew = abs(request.timestamp / 1000 - now)
    if request.timestamp < MIN_EPOCH_MS or skew > cfg.timestamp_tolerance_s:
        return 282, ""
    # The timestamp is signed exactly as sent: "0123" and 123 give different signatures.
    expected = sign(request.app_id, request.timestamp_text, token, request.random)
    if not hmac.compare_digest(expected, request.signature):
        return 281, ""
    limit, period = cfg.rate_limit, cfg.rate_period_s
    if not budget.try_admit(request.app_id, now, limit, period):
        wait = budget.retry_after(request.app_id, now, limit, period)
        return 299, f"at most {limit} calls per {period:g} s; next slot in {wait:.3f} s"
    return 200, ""


def listing(
    files: Iterable[RecordedFile], endpoint: str, request: QueryRequest, now: float, variant: str
) -> dict[str, Any]:
    """``content`` of a successful query: visible files uploaded in ``[begTime, endTime]``."""
    by_room = endpoint == "getVodInfoByRoomId"
    matching = sorted(
        (
            f
            for f in files
            if f.app_id == request.app_id
            and now >= f.visible_at
            and request.beg_time <= f.upload_ms <= request.end_time
            and (not by_room or f.room_id == request.room_id)
        ),
        key=lambda f: (f.upload_ms, f.fileid),
    )
    page = matching
    if request.page_num is not None and request.page_max is not None:
        first = (request.page_num - 1) * request.page_max
        page = matching[first : first + request.page_max]
    return {
        "data": [f.listed_fields(now, variant, by_room=by_room) for f in page],
        "cnt": {"cnt": len(matching)},
    }


def forced_code(plan: FaultPlan | None, code: int, detail: str) -> tuple[int, str]:
    """The code an admitted call answers once its fault (if any) is applied."""
    if plan is not None and plan.kind == "code" and plan.code != 200:
        return plan.code or 0, "injected"
    if plan is not None and plan.kind == "error":
        return 501, "injected"
    return code, detail


def query_outcome(plan: FaultPlan | None, payload: dict[str, Any]) -> Outcome:
    """The JSON answer, or what a transport-level fault turns it into."""
    if plan is None or plan.kind in ("hang", "code", "error"):
        return json_outcome(payload)
    if plan.kind == "drop":
        return Outcome(drop=True)
    return html_outcome(plan.http_status or 503)


def query_verdict(plan: FaultPlan | None, code: int) -> str:
    """Journal wording: ``ok``, ``code 299``, ``fault: code 501``, ``fault: drop``..."""
    verdict = "ok" if code == 200 else f"code {code}"
    if plan is None:
        return verdict
    if plan.kind in ("code", "error"):
        return f"fault: code {code}"
    if plan.kind == "hang":
        return f"fault: hang; {verdict}"
    return plan.label


def media_type(content_type: str | None) -> str:
    """``application/json`` from ``application/json; charset=utf-8``."""
    return (content_type or "").split(";", 1)[0].strip().lower()
