"""``anyrtc-recorder doctor``: is this deployment able to work?

Checks, in order: settings, Redis (state), the Celery broker, the downstream broker, a signed
test query reaching the vendor (through the global query budget, so it never trips the limit),
which workers consume each queue (and whether messages wait on a queue nobody consumes, Celery's
default ``celery`` included), whether callbacks need the token, whether callbacks have gone
silent while polling keeps finding files, and what is waiting longer than it should (the
backlog, booking events included). Each check is a plain function returning a
:class:`Check`; any ``fail`` makes the exit status 1, so a deployment script or a cron job
notices.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from config.celery import DEFAULT_QUEUE, EVENTS_QUEUE, LIFECYCLE_QUEUE, QUERY_QUEUE
from config.settings import Settings, SettingsError, load_settings
from worker.metrics.queues import ask_workers, consumers_of, queue_depths

__all__ = ["Check", "check_callbacks", "register", "run_checks", "workers_check"]

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_redis(settings: Settings) -> Check:
    from worker.redis import redis_from_url

    started = time.monotonic()
    try:
        client = redis_from_url(settings.redis_url)
        client.ping()
        info = client.info("server")
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "?")
    except Exception as exc:
        return Check("redis", FAIL, f"{_host(settings.redis_url)}: {type(exc).__name__}: {exc}")
    elapsed_ms = (time.monotonic() - started) * 1000
    detail = f"{_host(settings.redis_url)} Redis {info.get('redis_version')} ({elapsed_ms:.0f} ms)"
    if policy not in ("noeviction", "?"):
        return Check("redis", WARN, f"{detail}; maxmemory-policy is {policy}, use noeviction")
    return Check("redis", OK, detail)


def _broker_check(name: str, url: str) -> Check:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:
        return Check(name, FAIL, f"{_host(url)}: {type(exc).__name__}: {exc}")
    return Check(name, OK, _host(url))


def check_broker(settings: Settings) -> Check:
    return _broker_check("broker", settings.broker_url)


def check_downstream(settings: Settings) -> Check:
    return _broker_check("downstream", settings.downstream_broker_url)


def check_vendor(settings: Settings) -> Check:
    """One signed ``getVodListByTime`` of the last minute, admitted by the global budget."""
    from worker.discovery.limiter import SlidingWindowLimiter, gated_client
    from worker.errors import (
        AnyRTCError,
        AppInvalid,
        BadSignature,
        BudgetExhausted,
        RateLimited,
        UnknownApp,
    )
    from worker.redis import redis_from_url

    try:
        limiter = SlidingWindowLimiter.from_settings(settings, redis_from_url(settings.redis_url))
        client = gated_client(settings, limiter)
    except Exception as exc:
        return Check("vendor", SKIP, f"query budget unavailable: {type(exc).__name__}: {exc}")
    now_ms = int(time.time() * 1000)
    try:
        page = client.list_by_time(now_ms - 60_000, now_ms, page_num=1, page_max=1)
    except BudgetExhausted as exc:
        return Check(
            "vendor", SKIP, f"no query slot free for {exc.retry_after:.0f}s; try again later"
        )
    except RateLimited:
        return Check("vendor", WARN, "reachable, but the vendor answered 299 (budget spent)")
    except BadSignature:
        return Check("vendor", FAIL, "signature rejected (281): check ANYRTC_VOD_TOKEN")
    except UnknownApp:
        return Check("vendor", FAIL, "app id unknown (247): check ANYRTC_APP_ID")
    except AppInvalid:
        return Check("vendor", FAIL, "app invalid or deleted (284): check ANYRTC_APP_ID")
    except AnyRTCError as exc:
        return Check("vendor", FAIL, f"{settings.anyrtc_vod_api_url}: {exc}")
    finally:
        client.close()
    return Check(
        "vendor",
        OK,
        f"{settings.anyrtc_vod_api_url}: signed query accepted ({page.total} file(s) last minute)",
    )


# What stops when nobody consumes a queue: the doctor says it in these words.
QUEUE_ROLES = {
    LIFECYCLE_QUEUE: "booked windows will not start or stop",
    QUERY_QUEUE: "polls and room look-ups will not run",
    EVENTS_QUEUE: "callbacks will not be processed or published",
    DEFAULT_QUEUE: "booking events sent by task name alone will not be applied",
}


def workers_check(
    active_queues: dict[str, list[dict[str, Any]]], depths: dict[str, int] | None = None
) -> Check:
    """Which node consumes which queue (``inspect().active_queues()``'s reply): a failure naming
    every queue of :data:`QUEUE_ROLES` no answering worker consumes, and every queue of
    ``depths`` (messages waiting, by queue) whose messages wait with nobody to take them."""
    consumers = {queue: [] for queue in QUEUE_ROLES} | consumers_of(active_queues)
    served = "; ".join(
        f"{queue}: {', '.join(nodes)}" for queue, nodes in consumers.items() if nodes
    )
    found = []
    if not active_queues:
        found.append("no worker answered within 2 s: are the Procfile's workers running?")
    else:
        found += [
            f"no worker consumes {q} ({why}): start a worker with -Q {q}"
            for q, why in QUEUE_ROLES.items()
            if not consumers[q]
        ]
    for queue, waiting in sorted((depths or {}).items()):
        if waiting and not consumers.get(queue):
            hint = f"start a worker with -Q {queue}"
            found.append(
                f"{waiting} message(s) wait on {queue!r}, which no worker consumes: {hint}"
            )
    if found:
        return Check("workers", FAIL, "; ".join(found) + (f" [{served}]" if served else ""))
    return Check("workers", OK, served)


def check_workers(settings: Settings) -> Check:
    try:
        replies = ask_workers(timeout_s=2.0)
    except Exception as exc:
        return Check("workers", FAIL, f"could not ask: {type(exc).__name__}: {exc}")
    try:
        depths = queue_depths()
    except Exception:
        depths = None  # the broker check above says why
    return workers_check(replies, depths)


def check_callbacks(settings: Settings) -> Check:
    """Whether the callback receiver asks for the shared token."""
    # CALLBACK_AUTH arrives with the callback-auth change; getattr works before and after it.
    if str(getattr(settings, "callback_auth", "") or "").lower() == "off":
        return Check(
            "callbacks",
            WARN,
            "CALLBACK_AUTH=off: anyone who can reach the web process can post callbacks",
        )
    if settings.callback_token is None:
        return Check(
            "callbacks", WARN, "CALLBACK_TOKEN is not set: callbacks are accepted without a token"
        )
    return Check("callbacks", OK, "callbacks must carry CALLBACK_TOKEN")


def check_callback_silence(settings: Settings) -> Check:
    """Whether files keep being found by polling while no vendor callback comes."""
    from worker.discovery.keys import DiscoveryKeys
    from worker.discovery.silence import CAUSES, CallbackSilence
    from worker.redis import redis_from_url

    if settings.callbacks_expected == "off":
        return Check("silence", OK, "CALLBACKS_EXPECTED=off: not watched")
    try:
        status = CallbackSilence(
            redis_from_url(settings.redis_url),
            DiscoveryKeys(settings.redis_key_prefix),
            silence_s=settings.callback_silence_s,
            expected=True,
        ).status()
    except Exception as exc:
        return Check("silence", SKIP, f"could not read: {type(exc).__name__}: {exc}")
    if status.warned:
        since = status.quiet_since or status.warned_at or time.time()
        return Check(
            "silence",
            WARN,
            f"no vendor callback for {time.time() - since:.0f}s while {status.quiet_files} "
            f"file(s) were found only by polling: {CAUSES}",
        )
    return Check("silence", OK, f"{status.quiet_files} file(s) without callback lately")


def check_backlog(settings: Settings) -> Check:
    """Late actions, dead letters and unpublished messages (worker/cli/backlog.py)."""
    from worker.cli.backlog import read_backlog
    from worker.redis import redis_from_url

    try:
        backlog = read_backlog(
            redis_from_url(settings.redis_url), settings.redis_key_prefix, time.time()
        )
    except Exception as exc:
        return Check("backlog", SKIP, f"could not read: {type(exc).__name__}: {exc}")
    problems = backlog.problems()
    if problems:
        return Check("backlog", WARN, "; ".join([*problems, backlog.rejects_line()]))
    return Check("backlog", OK, backlog.summary())


CHECKS: tuple[Callable[[Settings], Check], ...] = (
    check_redis,
    check_broker,
    check_downstream,
    check_vendor,
    check_workers,
    check_callbacks,
    check_callback_silence,
    check_backlog,
)


def run_checks(
    settings: Settings | None = None,
    checks: tuple[Callable[[Settings], Check], ...] = CHECKS,
) -> list[Check]:
    """Every check's outcome; a settings failure stops the rest."""
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            return [Check("settings", FAIL, exc.message)]
    results = [Check("settings", OK, f"app {settings.anyrtc_app_id}")]
    results.extend(check(settings) for check in checks)
    return results


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"


def render(results: list[Check]) -> str:
    """A human table of the results."""
    width = max(len(c.name) for c in results)
    return "\n".join(f"{c.name:<{width}}  {c.status.upper():<4}  {c.detail}" for c in results)


def exit_code(results: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in results) else 0


def as_json(results: list[Check]) -> list[dict[str, Any]]:
    return [c.as_dict() for c in results]


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "doctor",
        parents=[common],
        help="check settings, Redis, brokers, the vendor (signed query), workers and backlog",
    )
    parser.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    results = run_checks()
    if getattr(args, "json", False):
        print(json.dumps(as_json(results), indent=2))
    else:
        print(render(results))
    return exit_code(results)
