"""``anyrtc-recorder budget``: the global query budget now (``REDIS_URL`` only)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from worker.cli.common import handles_errors, reading
from worker.cli.output import emit, when
from worker.discovery.keys import DiscoveryKeys
from worker.metrics.gauges import read_budget

__all__ = ["register"]


def _app_ids(ctx: Any) -> list[str]:
    """``ANYRTC_APP_ID``, else every app id that has a budget log in this deployment."""
    if ctx.settings.anyrtc_app_id:
        return [ctx.settings.anyrtc_app_id]
    pattern = DiscoveryKeys(ctx.settings.redis_key_prefix).budget("*")
    return sorted(str(k).rsplit(":", 1)[-1] for k in ctx.redis.scan_iter(match=pattern))


@handles_errors
def _budget(args: argparse.Namespace) -> int:
    ctx = reading()
    s = ctx.settings
    window = s.query_rate_period_s + s.query_rate_margin_s
    now = time.time()
    data = []
    for app_id in _app_ids(ctx):
        budget = read_budget(ctx.redis, s.redis_key_prefix, app_id, s.query_rate_limit, window)
        data.append(
            {"app_id": app_id, **budget.as_dict(), "next_free_at": now + budget.next_free_s}
        )

    def human(items: list[dict[str, Any]]) -> str:
        if not items:
            return "no query made yet (no budget log in Redis)"
        lines = []
        for b in items:
            free = (
                "a slot is free now"
                if b["next_free_s"] == 0
                else f"next free slot in {b['next_free_s']:.1f}s ({when(b['next_free_at'])})"
            )
            lines.append(
                f"app {b['app_id']}: {b['used']}/{b['limit']} slots used in the last "
                f"{b['window_s']:.0f}s; {free}; {b['waiting_lookups']} room look-up(s) waiting"
            )
        return "\n".join(lines)

    emit(args.json, data, human)
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``budget``."""
    p = commands.add_parser("budget", parents=[common], help="the query budget now")
    p.set_defaults(handler=_budget)
