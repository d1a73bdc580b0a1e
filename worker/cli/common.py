"""What every subcommand shares: the contexts, error reporting, and the ``--json`` mode.

Read-only subcommands use :func:`reading`, which needs only ``REDIS_URL`` (and the optional
``REDIS_KEY_PREFIX``): an operator on a bastion host, or a machine without the vendor's token,
can still see every booking. Commands that change state or call the vendor use
:func:`lifecycle`, built from the full settings.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import redis
from pydantic import Field, SecretStr, field_validator

from config.settings import Settings, SettingsError, describe_validation_error
from schedules import Lifecycle, get_lifecycle
from worker.errors import InvalidBooking, RecorderError

__all__ = [
    "Handler",
    "ReadSettings",
    "fail",
    "handles_errors",
    "lifecycle",
    "parse_value",
    "reading",
]

Handler = Callable[[argparse.Namespace], int]


class ReadSettings(Settings):
    """The settings without the vendor's credentials: what reading Redis needs."""

    anyrtc_app_id: str = Field("", validation_alias="ANYRTC_APP_ID")
    anyrtc_vod_token: SecretStr | None = Field(None, validation_alias="ANYRTC_VOD_TOKEN")  # type: ignore[assignment]

    # Same names as Settings' validators, so these replace them: both may be absent here.
    @field_validator("anyrtc_vod_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        return value

    @field_validator("anyrtc_app_id")
    @classmethod
    def _app_id_not_blank(cls, value: str) -> str:
        return value.strip()


def lifecycle() -> Lifecycle:
    """The context built from the environment (same variables as the worker)."""
    return get_lifecycle()


@functools.lru_cache(maxsize=1)
def reading() -> Lifecycle:
    """A context for reading (and for work that never calls the vendor): ``REDIS_URL`` only."""
    from pydantic import ValidationError

    try:
        settings = ReadSettings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(ReadSettings, exc)) from None
    return Lifecycle.from_settings(settings)


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, objects, null), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def fail(as_json: bool, message: str, status: int) -> int:
    """Report one error once: a line on stderr, or a JSON object on stdout with ``--json``."""
    if as_json:
        sys.stdout.write(json.dumps({"error": message, "status": status}) + "\n")
    else:
        print(f"error: {message}", file=sys.stderr)
    return status


def _text(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)


def handles_errors(handler: Handler) -> Handler:
    """Turn expected failures into one message and an exit status (no traceback)."""

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        as_json = bool(getattr(args, "json", False))
        try:
            return handler(args)
        except InvalidBooking as exc:
            return fail(as_json, _text(exc), 2)
        except SettingsError as exc:
            return fail(as_json, exc.message, 2)
        except (LookupError, ValueError, RecorderError) as exc:
            return fail(as_json, _text(exc), 1)
        except redis.RedisError as exc:
            return fail(as_json, f"Redis: {exc}", 1)

    return wrapper
