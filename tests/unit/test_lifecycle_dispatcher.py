"""The dispatcher's wake-up maths (pure: no Redis needed for it)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schedules.dispatch_step import group_actions
from schedules.dispatcher import Dispatcher, TickResult

NOW = 1_000.0


def dispatcher(ahead_s: float = 0.0, interval_s: float = 1.0) -> Dispatcher:
    store: Any = None  # sleep_s never touches the store
    return Dispatcher(
        store,
        lambda pairs, now: 0,
        lease_s=5.0,
        clock=lambda: NOW,
        interval_s=interval_s,
        ahead_s=ahead_s,
    )


def result(next_due: float | None, next_lease: float | None = None) -> TickResult:
    return TickResult(0, 0, 0, next_due, next_lease)


def test_nothing_pending_means_one_interval() -> None:
    assert dispatcher().sleep_s(result(None)) == 1.0


def test_wakes_for_the_next_due_time_minus_the_look_ahead() -> None:
    assert abs(dispatcher().sleep_s(result(NOW + 0.25)) - 0.252) < 1e-9
    assert abs(dispatcher(ahead_s=2.0).sleep_s(result(NOW + 2.5)) - 0.502) < 1e-9


def test_wakes_for_a_lease_end() -> None:
    assert abs(dispatcher().sleep_s(result(NOW + 30, NOW + 0.1)) - 0.102) < 1e-9


@given(
    next_due=st.none() | st.floats(min_value=NOW - 100, max_value=NOW + 100),
    next_lease=st.none() | st.floats(min_value=NOW - 100, max_value=NOW + 100),
    ahead=st.floats(min_value=0, max_value=10),
    interval=st.floats(min_value=0.01, max_value=60),
)
def test_never_negative_never_longer_than_an_interval(
    next_due: float | None, next_lease: float | None, ahead: float, interval: float
) -> None:
    wait = dispatcher(ahead, interval).sleep_s(result(next_due, next_lease))
    assert 0.0 <= wait <= interval
    if next_due is not None:
        assert NOW + wait <= max(next_due - ahead, NOW) + 0.002 + 1e-9


def test_actions_are_grouped_by_due_second_in_chunks_with_the_earliest_due_as_eta() -> None:
    pairs = [(f"start:b{n}:1", NOW + 2.0) for n in range(5)]
    pairs += [("start:late:1", NOW + 2.5), ("stop:x:1", NOW + 3.0)]
    pairs += [("op:r1:2", NOW - 1.0), ("start:now:1", NOW)]
    groups = group_actions(pairs, NOW, size=3)
    assert groups == [
        (["start:b0:1", "start:b1:1", "start:b2:1"], NOW + 2.0),
        (["start:b3:1", "start:b4:1", "start:late:1"], NOW + 2.0),
        (["stop:x:1"], NOW + 3.0),
        (["op:r1:2", "start:now:1"], None),
    ]
    assert sorted(a for g, _ in groups for a in g) == sorted(a for a, _ in pairs)
