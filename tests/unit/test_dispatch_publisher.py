"""The dispatcher's publisher: a group claimed ahead starts PREPARE_S before its due time."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from schedules.dispatch_step import PERFORM_BATCH_TASK, PERFORM_TASK, make_publisher

NOW = 1_000_000.0


class FakeApp:
    """What the publisher uses of a Celery app, recording each send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    @contextmanager
    def producer_or_acquire(self) -> Any:
        yield object()

    def send_task(self, name: str, **kwargs: Any) -> None:
        self.sent.append({"name": name, **kwargs})


def test_a_group_claimed_ahead_starts_prepare_s_before_its_due_time() -> None:
    app = FakeApp()
    publish = make_publisher(app, batch_size=2, prepare_s=1.0)  # type: ignore[arg-type]
    lost = publish(
        [("start:a:1", NOW + 2.0), ("start:b:1", NOW + 2.4), ("start:c:1", NOW + 2.0)], NOW
    )
    assert lost == 0
    batch, single = app.sent
    assert batch["name"] == PERFORM_BATCH_TASK and batch["kwargs"] == {
        "actions": ["start:a:1", "start:b:1"]
    }
    assert batch["eta"] == datetime.fromtimestamp(NOW + 1.0, tz=UTC)
    assert single["name"] == PERFORM_TASK and single["eta"] == datetime.fromtimestamp(
        NOW + 1.0, tz=UTC
    )


def test_an_action_due_within_prepare_s_or_already_due_goes_at_once() -> None:
    app = FakeApp()
    publish = make_publisher(app, prepare_s=1.0)  # type: ignore[arg-type]
    publish([("start:a:1", NOW + 0.5)], NOW)
    publish([("op:r:3", NOW)], NOW)
    assert [sent["eta"] for sent in app.sent] == [None, None]


def test_messages_claimed_ahead_are_paced_and_due_ones_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from schedules import dispatch_step

    pauses: list[float] = []
    monkeypatch.setattr(dispatch_step.time, "sleep", pauses.append)
    publish = make_publisher(FakeApp(), batch_size=1, prepare_s=1.0, pace_s=0.002)  # type: ignore[arg-type]
    publish([("start:a:1", NOW + 2.0), ("start:b:1", NOW + 2.0), ("op:r:3", NOW)], NOW)
    assert pauses == [0.002, 0.002]


def test_the_pauses_never_take_more_than_half_the_time_before_the_first_task_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from schedules import dispatch_step

    pauses: list[float] = []
    monkeypatch.setattr(dispatch_step.time, "sleep", pauses.append)
    publish = make_publisher(FakeApp(), batch_size=1, prepare_s=1.0, pace_s=0.005)  # type: ignore[arg-type]
    publish([(f"start:{n}:1", NOW + 2.0) for n in range(500)], NOW)
    assert len(pauses) == 500 and sum(pauses) <= 0.5 + 1e-9
