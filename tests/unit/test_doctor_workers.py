"""The doctor's reading of ``inspect().active_queues()``: which queue nobody consumes."""

from __future__ import annotations

from worker.cli.doctor import QUEUE_ROLES, workers_check


def _queues(*names: str) -> list[dict[str, str]]:
    return [{"name": name, "routing_key": name} for name in names]


def test_no_reply_is_a_warning() -> None:
    check = workers_check({})
    assert (check.status, check.detail) == ("warn", "no worker answered within 2 s")


def test_every_queue_consumed_lists_its_nodes() -> None:
    check = workers_check(
        {
            "lifecycle-2@h": _queues("lifecycle"),
            "lifecycle-1@h": _queues("lifecycle"),
            "discovery-3@h": _queues("query", "events"),
        }
    )
    assert check.status == "ok"
    assert check.detail == (
        "lifecycle: lifecycle-1@h, lifecycle-2@h; query: discovery-3@h; events: discovery-3@h"
    )


def test_each_unconsumed_queue_is_named_with_what_stops() -> None:
    check = workers_check({"discovery-3@h": _queues("query", "events")})
    assert check.status == "warn"
    assert check.detail == (
        f"no worker consumes lifecycle ({QUEUE_ROLES['lifecycle']}) "
        "[query: discovery-3@h; events: discovery-3@h]"
    )


def test_a_worker_with_no_queues_counts_as_none() -> None:
    check = workers_check({"idle@h": []})
    assert check.status == "warn"
    assert all(f"no worker consumes {queue}" in check.detail for queue in QUEUE_ROLES)
