"""Process logging: plain text or JSON lines (``LOG_FORMAT``), with secrets scrubbed.

Every handler carries :class:`SecretFilter`, so a vod token that reaches a log record by any
path (an exception text, a repr, a vendor echo, a structured extra) is replaced before anything
is written.

JSON lines (:class:`JsonFormatter`) carry ``booking_id``, ``room_id``, ``action`` and ``file_id``
as fields wherever the line is about one: from the record's extras, else from the task being run
or the task a Celery line is about (its keyword arguments, or its id: a ``recordings.perform``
task id is the action id). Structured extras (Celery's ``data`` of a task event) are nested
JSON, not a Python repr. Celery's own lines go through the same handler (``worker/celery.py``
connects ``setup_logging``), so they follow the same format.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CONTEXT_FIELDS",
    "JsonFormatter",
    "SecretFilter",
    "configure_logging",
    "context_fields",
    "secrets_of",
]

REDACTED = "***"
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
#: Fields an operator filters on, lifted to the top of each JSON line where they apply.
CONTEXT_FIELDS = ("booking_id", "room_id", "action", "file_id")
# The vendor's names for the same things (a callback payload, a record call's parameters).
_ALIASES = {"groupId": "room_id", "ArRoomID": "room_id", "fileId": "file_id"}
_MAX_DEPTH = 6


def _jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-ready data (mappings and sequences kept, anything else as text)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if depth >= _MAX_DEPTH:
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    return str(value)


def context_fields(
    task_id: str | None = None, args: Any = None, kwargs: Any = None
) -> dict[str, str]:
    """``booking_id``/``room_id``/``action``/``file_id`` of a task, from its keyword arguments,
    a mapping first argument (a callback payload) and its id (an action id)."""
    found: dict[str, str] = {}
    sources = [kwargs] + ([args[0]] if isinstance(args, list | tuple) and args else [])
    for source in sources:
        if not isinstance(source, dict):
            continue
        for key, value in source.items():
            name = _ALIASES.get(str(key), str(key))
            if name in CONTEXT_FIELDS and isinstance(value, str) and value:
                found.setdefault(name, value)
    action = found.get("action") or task_id
    if action:
        from schedules.keys import parse_action

        try:
            ref = parse_action(action)
        except ValueError:
            return found
        found["action"] = action
        found.setdefault("room_id" if ref.is_room_op else "booking_id", ref.subject)
    return found


def secrets_of(settings: Any) -> list[str]:
    """The secret values of ``settings`` that must never be written anywhere."""
    found = []
    for name in ("anyrtc_vod_token", "callback_token", "metrics_basic_auth"):
        value = getattr(settings, name, None)
        if value is not None and hasattr(value, "get_secret_value"):
            secret = value.get_secret_value()
            if secret:
                found.append(secret)
    return found


class SecretFilter(logging.Filter):
    """Replaces every known secret in a record's message, arguments and exception text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _scrub_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, dict):
            return {k: self._scrub_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub_value(v) for v in value]
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        # Structured extras become JSON-ready data here, before scrubbing: the text of an
        # object is then scrubbed too, not produced later by the formatter.
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                record.__dict__[key] = self._scrub_value(_jsonable(value))
        if not self.secrets:
            return True
        message = record.getMessage()
        scrubbed = self._scrub(message)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields, task
    fields, extras (nested JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        entry.update(_current_task())
        extras = {
            key: _jsonable(value)
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        }
        data = extras.get("data")
        if isinstance(data, dict):
            # A Celery line about a task (received, succeeded, failed): its ids and arguments.
            for key, value in context_fields(data.get("id"), None, data.get("kwargs")).items():
                entry.setdefault(key, value)
        entry.update(extras)
        if record.exc_text or record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry, ensure_ascii=False)


def _current_task() -> dict[str, Any]:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover
        return {}
    task = current_task
    request = getattr(task, "request", None) if task else None
    if not request or not request.id:
        return {}
    fields: dict[str, Any] = context_fields(request.id, request.args, request.kwargs)
    return {**fields, "task_id": request.id, "task_name": task.name}


def configure_logging(
    *, log_format: str = "text", level: str = "INFO", secrets: Iterable[str] = ()
) -> None:
    """Replace the root handlers with one stdout handler of the chosen format."""
    handler = logging.StreamHandler(sys.stdout)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(processName)s] %(message)s")
        )
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Python warnings (a library's DeprecationWarning, Celery's SecurityWarning) become log
    # records of ``py.warnings``, in the same format, instead of raw lines on stderr.
    logging.captureWarnings(True)
