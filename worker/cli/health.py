"""``anyrtc-recorder healthcheck worker|beat``: the container health checks of the Celery
processes (docker-compose.yml), exit 0 when healthy.

- ``worker``: a Celery ``ping`` to the worker node(s) of this host (``*@<hostname>``, the
  Procfile's node names): healthy when one answers, so a wedged or disconnected worker is
  restarted while the other containers' workers do not count for it.
- ``beat``: the schedule file beat keeps has been written within ``--max-age`` seconds (beat
  saves it at least every 3 minutes while it runs its schedule).
"""

from __future__ import annotations

import argparse
import glob
import os
import socket
import time
from typing import Any

from worker.cli.common import fail, handles_errors
from worker.cli.output import emit

__all__ = ["register", "schedule_age"]

DEFAULT_SCHEDULE = "/tmp/anyrtc-celerybeat-schedule"
DEFAULT_MAX_AGE_S = 600.0


def schedule_age(schedule: str, now: float) -> float | None:
    """Age in seconds of the newest file of beat's schedule (its dbm may add suffixes), or None
    when there is none."""
    mtimes = [os.path.getmtime(p) for p in glob.glob(glob.escape(schedule) + "*")]
    return now - max(mtimes) if mtimes else None


@handles_errors
def _worker(args: argparse.Namespace) -> int:
    from worker.celery import app

    pattern = f"*@{socket.gethostname()}"
    replies = app.control.inspect(timeout=args.timeout, pattern=pattern, matcher="glob").ping()
    if not replies:
        return fail(args.json, f"no worker matching {pattern} answered a ping", 1)
    emit(args.json, replies, lambda r: "; ".join(f"{n}: {v.get('ok')}" for n, v in r.items()))
    return 0


@handles_errors
def _beat(args: argparse.Namespace) -> int:
    age = schedule_age(args.schedule, time.time())
    if age is None:
        return fail(args.json, f"no beat schedule file at {args.schedule}", 1)
    if age > args.max_age:
        return fail(args.json, f"beat's schedule not written for {age:.0f}s", 1)
    emit(args.json, {"schedule_age_s": age}, lambda d: f"beat schedule written {age:.0f}s ago")
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``healthcheck worker`` and ``healthcheck beat``."""
    group = commands.add_parser("healthcheck", help="container health checks of Celery processes")
    kinds = group.add_subparsers(dest="healthcheck_command", metavar="PROCESS", required=True)
    p = kinds.add_parser("worker", parents=[common], help="a worker of this host answers a ping")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(handler=_worker)
    p = kinds.add_parser("beat", parents=[common], help="beat keeps writing its schedule")
    p.add_argument("--schedule", default=DEFAULT_SCHEDULE)
    p.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE_S)
    p.set_defaults(handler=_beat)
