"""Messages on the product's queues that no task can take: dead-lettered, not only logged.

Celery logs and drops a message naming an unknown task, one it cannot read as a task, and one
it cannot decode at all (a content type outside ``accept_content``, broken JSON). A booking
system that sent any of them would never hear of it, so each also becomes an entry of the one
dead-letter store (``anyrtc-recorder deadletters list``) with the reason and what could be read
of the message (clipped, secrets removed). Imported by the worker through ``include``;
:class:`MisfitConsumer` is the worker's consumer (``worker_consumer``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_rejected, task_unknown

from config.settings import get_settings
from schedules import get_lifecycle
from schedules.letter_values import clipped
from schedules.reconnect import QuickReconnectConsumer
from worker.logs import secrets_of

__all__ = ["MisfitConsumer", "dead_letter_message"]

log = logging.getLogger(__name__)

BODY_CLIP = 2000


def _readable(message: Any) -> dict[str, Any]:
    """The message's arguments when it decodes (protocol 2: args, kwargs, embed), else its
    raw body, clipped."""
    try:
        body = message.decode()
    except Exception:  # undecodable is the case being handled; the raw body is what is left
        body = None
    if isinstance(body, list | tuple) and len(body) == 3 and isinstance(body[1], dict):
        args, kwargs = body[0], body[1]
        return {**({"args": list(args)} if args else {}), **kwargs}
    raw = message.body
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return {"body": text[:BODY_CLIP]}


def dead_letter_message(message: Any, *, task: str, error: str, reason: str) -> None:
    """One dead letter for ``message``; never raises (the consumer must keep consuming)."""
    try:
        ctx = get_lifecycle()
        kwargs = clipped(_readable(message), secrets=secrets_of(get_settings()))
        entry = ctx.deadletters.add(
            task=task, kwargs=kwargs, error=error, message=reason, now=ctx.clock()
        )
        log.warning("message for %r dead-lettered (%s): %s", task, entry, reason)
    except Exception:
        log.exception("could not dead-letter a message for %r", task)


def _task_name(message: Any) -> str:
    headers = getattr(message, "headers", None) or {}
    name = headers.get("task") if isinstance(headers, dict) else None
    return name if isinstance(name, str) else ""


@task_unknown.connect
def _on_unknown_task(message: Any = None, name: str = "", **_: Any) -> None:
    reason = f"no task named {name!r} (booking events are {', '.join(_event_names())})"
    dead_letter_message(message, task=name, error="UnknownTask", reason=reason)


@task_rejected.connect
def _on_rejected(message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
    reason = "not a Celery task message" + (f": {type(exc).__name__}: {exc}" if exc else "")
    dead_letter_message(message, task=_task_name(message), error="InvalidMessage", reason=reason)


def _event_names() -> list[str]:
    from anyrtc_recorder_client.contract import EVENTS

    return [event.task for event in EVENTS]


class MisfitConsumer(QuickReconnectConsumer):
    """The worker's consumer: the steady broker reconnect of
    :class:`schedules.reconnect.QuickReconnectConsumer`, and a message it cannot decode is
    dead-lettered before it is dropped."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        reason = f"message cannot be decoded ({type(exc).__name__}: {exc})"
        dead_letter_message(
            message, task=_task_name(message), error="UndecodableMessage", reason=reason
        )
        super().on_decode_error(message, exc)
