"""Discovery settings scaled down for tests that run the whole flow in seconds."""

from __future__ import annotations

from typing import Any

__all__ = ["scaled_discovery"]


def scaled_discovery(settings: Any, **extra: Any) -> Any:
    """``settings`` with a query budget of 5 per second, a poll every second over a 30 s
    overlap, 5 s of transcoding, no callback grace (poll-found files are published at once:
    the grace's own tests set it on the settler) and the run's customer queue bound to
    ``recording.*``; ``extra`` overrides or adds fields."""
    return settings.model_copy(
        update={
            "query_rate_limit": 5,
            "query_rate_period_s": 1.0,
            "query_rate_margin_s": 0.02,
            "poll_interval_s": 1.0,
            "poll_overlap_s": 30.0,
            "expected_transcode_s": 5.0,
            "callback_grace_s": 0.0,
            "downstream_queues": f"{settings.redis_key_prefix}-customer=recording.*",
            **extra,
        }
    )
