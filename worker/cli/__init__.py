"""``anyrtc-recorder``: the operator console.

Subcommands live in small modules, each with ``register(subparsers, common)``; adding one (say
``worker/cli/doctor.py``) is one line in :data:`COMMAND_MODULES`. ``common`` is a parent parser
carrying the shared options (``--json``); a handler is set with ``set_defaults(handler=...)``,
takes the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES: tuple[str, ...] = (
    "worker.cli.bookings",
    "worker.cli.deadletters",
    "worker.cli.delivery",
    "worker.cli.budget",
    "worker.cli.counts",
    "worker.cli.doctor",
    "worker.cli.health",
)

EXIT_OK = 0
EXIT_FAILED = 1


class _Parser(argparse.ArgumentParser):
    """Usage errors as one JSON object on stdout when ``--json`` was given (scripts parse
    stdout), else argparse's usual text."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if _Parser.json_errors:
            sys.stdout.write(json.dumps({"error": f"{self.prog}: {message}", "status": 2}) + "\n")
            sys.exit(2)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="anyrtc-recorder",
        description="Operate the anyRTC recorder: bookings, windows, dead letters, files, the "
        "query budget, rejected callbacks, the outbox, doctor. Read-only commands need only "
        "REDIS_URL.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    common = _Parser(add_help=False)
    # SUPPRESS: "--json" given before the subcommand is not reset by the subparser's default.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anyrtc-recorder`` console script."""
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_errors = "--json" in arguments
    args = parser.parse_args(arguments)
    try:
        return int(args.handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
