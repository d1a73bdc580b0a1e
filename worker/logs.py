"""Process logging: plain text or JSON lines (``LOG_FORMAT``), with secrets scrubbed.

Every handler carries :class:`SecretFilter`, so a vod token that reaches a log record by any
path (an exception text, a repr, a vendor echo) is replaced before anything is written.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "SecretFilter", "configure_logging", "secrets_of"]

REDACTED = "***"
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


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

    def filter(self, record: logging.LogRecord) -> bool:
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
    """One JSON object per line: time, level, logger, message, task fields, extras."""

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
        task = _current_task()
        if task:
            entry.update(task)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, str | int | float | bool | None) else repr(value)
                )
        if record.exc_text or record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry, ensure_ascii=False)


def _current_task() -> dict[str, str]:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover
        return {}
    task = current_task
    if not task or not getattr(task, "request", None) or not task.request.id:
        return {}
    return {"task_id": task.request.id, "task_name": task.name}


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
