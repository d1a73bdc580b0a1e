"""What every subcommand shares: the lifecycle context and error reporting."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import redis

from schedules import Lifecycle, get_lifecycle
from worker.errors import InvalidBooking

__all__ = ["Handler", "handles_errors", "lifecycle", "parse_value"]

Handler = Callable[[argparse.Namespace], int]


def lifecycle() -> Lifecycle:
    """The context built from the environment (same variables as the worker)."""
    return get_lifecycle()


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, objects, null), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def handles_errors(handler: Handler) -> Handler:
    """Turn expected failures into one line on stderr and an exit status (no traceback)."""

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except InvalidBooking as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (LookupError, ValueError) as exc:
            print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 1
        except redis.RedisError as exc:
            print(f"error: Redis: {exc}", file=sys.stderr)
            return 1

    return wrapper
