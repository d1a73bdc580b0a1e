"""The lease keeper's bookkeeping and the vendor result strings: pure logic, no Redis."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedules.leases import LeaseKeeper
from schedules.vendor import ResultStrings, parse_result_patterns


class FakeStore:
    """Records heartbeats; says an action is gone once it is in ``gone``."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[tuple[str, str]]]] = []
        self.gone: set[str] = set()

    def renew_leases(
        self, *, now: float, lease_s: float, actions: list[str], attempts: list[tuple[str, str]]
    ) -> tuple[list[bool], list[bool]]:
        self.calls.append((list(actions), list(attempts)))
        return [a not in self.gone for a in actions], [True for _ in attempts]


def keeper(now: list[float], store: Any) -> LeaseKeeper:
    return LeaseKeeper(store, 3.0, clock=lambda: now[0], max_hold_s=60.0)


def test_held_work_is_renewed_until_released_or_gone() -> None:
    now, store = [1000.0], FakeStore()
    k = keeper(now, store)
    k.hold("task-1", ["start:a:1", "start:b:1"])
    k.hold("task-1", ["start:a:1"])  # the same task delivered twice to this process
    with k.calling("op:r:1", "tok"):
        k.renew()
    assert store.calls[-1] == (["start:a:1", "start:b:1"], [("op:r:1", "tok")])
    store.gone.add("start:b:1")  # applied: no longer in flight
    k.renew()
    k.renew()
    assert store.calls[-1] == (["start:a:1"], [])
    k.release("task-1")
    k.renew()
    assert store.calls[-1] == (["start:a:1"], [])  # one copy still runs
    k.release("task-1")
    calls = len(store.calls)
    k.renew()
    assert len(store.calls) == calls  # nothing held: no Redis call at all


def test_nothing_is_held_past_max_hold() -> None:
    now, store = [1000.0], FakeStore()
    k = keeper(now, store)
    k.hold("stuck", ["start:s:1"])
    now[0] += 61.0
    assert k.held() == ([], [])


def test_heartbeat_is_three_per_lease() -> None:
    assert keeper([0.0], FakeStore()).interval_s == pytest.approx(1.0)


def test_default_result_strings_are_todays() -> None:
    results = ResultStrings()
    assert results.means_done("start", " Room is already recording ")
    assert results.means_done("stop", "room is not recording")
    assert not results.means_done("start", "room is not recording")
    assert not results.means_done("stop", None)


def test_result_strings_and_patterns_are_configurable() -> None:
    results = ResultStrings.from_text("already started; re:^recording (in )?progress", "idle")
    assert results.means_done("start", "ALREADY STARTED")
    assert results.means_done("start", "Recording in progress for room 7")
    assert not results.means_done("start", "already started twice")
    assert results.means_done("stop", "Idle")


@given(st.text(min_size=1).filter(lambda t: t.strip() and ";" not in t and "\n" not in t))
def test_a_plain_entry_matches_itself_only(entry: str) -> None:
    if entry.strip().startswith("re:"):
        return
    results = ResultStrings.from_text(entry, "")
    assert results.means_done("start", entry.upper() if entry.isascii() else entry)
    assert not results.means_done("start", entry.strip() + "x")


def test_a_bad_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="bad regular expression"):
        parse_result_patterns("re:(")


def test_a_bad_pattern_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.settings import SettingsError, load_settings

    monkeypatch.setenv("ANYRTC_APP_ID", "a")
    monkeypatch.setenv("ANYRTC_VOD_TOKEN", "t")
    monkeypatch.setenv("ANYRTC_NOT_RECORDING_RESULTS", "idle; re:[")
    with pytest.raises(SettingsError, match="ANYRTC_NOT_RECORDING_RESULTS is invalid"):
        load_settings()


def test_a_lost_broker_connection_forgets_received_messages_not_calls() -> None:
    now, store = [1000.0], FakeStore()
    k = keeper(now, store)
    k.hold("task-eta", ["start:e:1"])
    with k.calling("op:r:1", "tok"):
        k.forget_received()
        assert k.held() == ([], [("op:r:1", "tok")])
