"""The doctor's reading of ``inspect().active_queues()`` and the queue depths: which queue
nobody consumes, and which messages wait with nobody to take them."""

from __future__ import annotations

from types import SimpleNamespace

from worker.cli.doctor import QUEUE_ROLES, check_callbacks, exit_code, workers_check


def _queues(*names: str) -> list[dict[str, str]]:
    return [{"name": name, "routing_key": name} for name in names]


EVERY = {
    "lifecycle-1@h": _queues("lifecycle", "celery"),
    "discovery-3@h": _queues("query", "events"),
}


def test_no_reply_is_a_failure() -> None:
    check = workers_check({})
    assert check.status == "fail"
    assert check.detail == "no worker answered within 2 s: are the Procfile's workers running?"
    assert exit_code([check]) == 1


def test_every_queue_consumed_lists_its_nodes() -> None:
    check = workers_check(
        {
            "lifecycle-2@h": _queues("lifecycle", "celery"),
            "lifecycle-1@h": _queues("lifecycle", "celery"),
            "discovery-3@h": _queues("query", "events"),
        },
        {"lifecycle": 3, "query": 0, "events": 0, "celery": 0},
    )
    assert check.status == "ok"
    assert check.detail == (
        "lifecycle: lifecycle-1@h, lifecycle-2@h; query: discovery-3@h; events: discovery-3@h; "
        "celery: lifecycle-1@h, lifecycle-2@h"
    )


def test_each_unconsumed_queue_is_named_with_what_stops_and_fails() -> None:
    check = workers_check({"discovery-3@h": _queues("query", "events")})
    assert check.status == "fail"
    assert check.detail == (
        f"no worker consumes lifecycle ({QUEUE_ROLES['lifecycle']}): start a worker with "
        f"-Q lifecycle; no worker consumes celery ({QUEUE_ROLES['celery']}): start a worker "
        "with -Q celery [query: discovery-3@h; events: discovery-3@h]"
    )


def test_a_worker_with_no_queues_counts_as_none() -> None:
    check = workers_check({"idle@h": []})
    assert check.status == "fail"
    assert all(f"no worker consumes {queue}" in check.detail for queue in QUEUE_ROLES)


def test_messages_on_celerys_default_queue_with_no_consumer_fail() -> None:
    """A lifecycle worker started without Celery's default queue (an older Procfile line):
    tasks sent by name alone wait there."""
    older = {**EVERY, "lifecycle-1@h": _queues("lifecycle")}
    check = workers_check(older, {"lifecycle": 0, "celery": 2})
    assert check.status == "fail"
    assert f"no worker consumes celery ({QUEUE_ROLES['celery']})" in check.detail
    assert (
        "2 message(s) wait on 'celery', which no worker consumes: start a worker with -Q celery"
        in check.detail
    )


def test_messages_on_a_consumed_queue_are_fine() -> None:
    assert workers_check(EVERY, {"lifecycle": 50, "celery": 0}).status == "ok"


def _settings(**fields: object) -> SimpleNamespace:
    return SimpleNamespace(callback_token="set", **fields)


def test_callback_auth_off_is_warned_about_when_the_setting_exists() -> None:
    check = check_callbacks(_settings(callback_auth="off"))  # type: ignore[arg-type]
    assert check.status == "warn" and "CALLBACK_AUTH=off" in check.detail
    assert check_callbacks(_settings()).status == "ok"  # type: ignore[arg-type]
    assert check_callbacks(_settings(callback_auth="token")).status == "ok"  # type: ignore[arg-type]
    unset = SimpleNamespace(callback_token=None)
    assert check_callbacks(unset).status == "warn"  # type: ignore[arg-type]
