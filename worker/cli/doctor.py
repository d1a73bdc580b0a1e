"""``anyrtc-recorder doctor``: settings, Redis, brokers, a signed vendor query, workers, backlog."""

from __future__ import annotations

import argparse
import json

from worker.doctor import as_json, exit_code, render, run_checks

__all__ = ["register"]


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
