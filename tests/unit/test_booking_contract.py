"""Everything that lists the booking events' parameters agrees with
anyrtc_recorder_client.contract: the Celery tasks, the event functions, the booking client, the
operator CLI and README's contract table. And the client stays thin."""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from anyrtc_recorder_client import BookingClient
from anyrtc_recorder_client.contract import (
    CANCEL,
    EVENTS,
    LIFECYCLE_QUEUE,
    OPTIONAL_DEFAULT,
    SCHEDULE,
    START,
    STOP,
    Event,
)
from config.celery import LIFECYCLE_QUEUE as CONFIGURED_LIFECYCLE_QUEUE
from schedules import events
from worker.cli import build_parser
from worker.tasks import lifecycle as tasks

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ROOT = ROOT / "clients" / "python"

TASKS = {
    SCHEDULE: tasks.schedule_task,
    CANCEL: tasks.cancel_task,
    START: tasks.start_task,
    STOP: tasks.stop_task,
}
EVENT_FUNCTIONS = {
    SCHEDULE: events.schedule,
    CANCEL: events.cancel,
    START: events.start_now,
    STOP: events.stop_now,
}
CLIENT_METHODS = {
    SCHEDULE: BookingClient.schedule,
    CANCEL: BookingClient.cancel,
    START: BookingClient.start,
    STOP: BookingClient.stop,
}
CLI_COMMANDS = {SCHEDULE: "schedule", CANCEL: "cancel", START: "start", STOP: "stop"}
# The CLI's own spelling of a contract parameter, not a parameter of its own.
CLI_ONLY_OPTIONS = {"user_data_json"}


def contract_parameters(event: Event, kind: inspect._ParameterKind) -> list[inspect.Parameter]:
    return [
        inspect.Parameter(
            name,
            kind,
            default=inspect.Parameter.empty if name in event.required else OPTIONAL_DEFAULT,
        )
        for name in event.parameters
    ]


def parameters(func: Callable[..., Any], *, leave_out: set[str]) -> list[inspect.Parameter]:
    """The parameters without their annotations (the contract has no types)."""
    return [
        p.replace(annotation=inspect.Parameter.empty)
        for p in inspect.signature(func).parameters.values()
        if p.name not in leave_out
    ]


def test_the_mappings_cover_every_event() -> None:
    for mapping in (TASKS, EVENT_FUNCTIONS, CLIENT_METHODS, CLI_COMMANDS):
        assert tuple(mapping) == EVENTS


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.task)
def test_each_task_has_the_contract_name_and_signature(event: Event) -> None:
    task = TASKS[event]
    assert task.name == event.task
    # Positional or keyword: LifecycleTask binds the call to this signature, so a client that
    # sends args in contract order is accepted as well.
    expected = contract_parameters(event, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    assert parameters(task.run, leave_out=set()) == expected


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.task)
def test_each_event_function_takes_the_contract_as_keywords(event: Event) -> None:
    expected = contract_parameters(event, inspect.Parameter.KEYWORD_ONLY)
    found = parameters(EVENT_FUNCTIONS[event], leave_out={"ctx", "source", "dead_letter"})
    assert found == expected


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.task)
def test_each_client_method_has_the_task_signature(event: Event) -> None:
    expected = contract_parameters(event, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    assert parameters(CLIENT_METHODS[event], leave_out={"self"}) == expected


def subcommand(name: str) -> tuple[argparse.ArgumentParser, str | None]:
    """The subcommand's parser and the help line ``anyrtc-recorder --help`` shows for it."""
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    [listed] = [a for a in commands._choices_actions if a.dest == name]
    return commands.choices[name], listed.help


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.task)
def test_each_cli_subcommand_offers_contract_parameters_only(event: Event) -> None:
    parser, help_line = subcommand(CLI_COMMANDS[event])
    assert help_line == event.description
    actions = [a for a in parser._actions if a.dest not in {"help", "json"}]
    positional = [a.dest for a in actions if not a.option_strings]
    options = [a for a in actions if a.option_strings and a.dest not in CLI_ONLY_OPTIONS]
    assert positional == list(event.required)
    # A subset of the optional parameters (the console offers what operators need), in order.
    offered = [a.dest for a in options]
    assert offered == [name for name in event.optional if name in offered]
    for action in options:
        assert action.option_strings == ["--" + action.dest.replace("_", "-")]
        assert action.default is OPTIONAL_DEFAULT


def render_table() -> str:
    rows = ["| task | keyword arguments |", "| --- | --- |"]
    for event in EVENTS:
        arguments = [*event.required, *(f"{name}={OPTIONAL_DEFAULT}" for name in event.optional)]
        rows.append(f"| `{event.task}` | `{', '.join(arguments)}` |")
    return "\n".join(rows) + "\n"


def test_readme_shows_the_contract_table() -> None:
    assert render_table() in (ROOT / "README.md").read_text()


def test_the_queue_is_the_contract_queue() -> None:
    assert CONFIGURED_LIFECYCLE_QUEUE == LIFECYCLE_QUEUE == "lifecycle"


def test_kwargs_follow_the_contract_order_and_defaults() -> None:
    given = {"end_at": 2, "start_at": 1, "room_id": "r", "booking_id": "b", "self": object()}
    assert list(SCHEDULE.kwargs(given).items()) == [
        ("booking_id", "b"),
        ("room_id", "r"),
        ("start_at", 1),
        ("end_at", 2),
        ("user_data", None),
        ("name_rule", None),
        ("path", None),
        ("room_type", None),
        ("updated_at", None),
    ]
    with pytest.raises(TypeError, match=r"recordings\.schedule: missing start_at, end_at"):
        SCHEDULE.kwargs({"booking_id": "b", "room_id": "r"})


def test_the_client_distribution_depends_on_celery_only() -> None:
    project = tomllib.loads((CLIENT_ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "anyrtc-recorder-client"
    assert [d.split("[")[0].split(">")[0] for d in project["dependencies"]] == ["celery"]


def test_the_product_requires_what_the_client_requires() -> None:
    # The product wheel carries the client's package but not its metadata: the product's own
    # dependencies must cover it.
    client = tomllib.loads((CLIENT_ROOT / "pyproject.toml").read_text())["project"]
    product = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(client["dependencies"]) <= set(product["dependencies"])


def imported_top_levels(package: Path) -> set[str]:
    names: set[str] = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_the_client_imports_nothing_of_the_product() -> None:
    found = imported_top_levels(CLIENT_ROOT / "anyrtc_recorder_client")
    third_party = found - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"anyrtc_recorder_client", "celery", "kombu"}


def test_dockerfile_copies_the_client_package_the_product_wheel_carries() -> None:
    assert "COPY clients/python ./clients/python" in (ROOT / "Dockerfile").read_text()
