"""A budgeted task's back-off counts its errors, not the budget waits it was re-queued for."""

from __future__ import annotations

from typing import Any

from config.settings import get_settings
from worker.tasks.discovery import _retry_on_error


class FakeTask:
    def __init__(self, retries: int, kwargs: dict[str, Any]) -> None:
        self.request = type("Request", (), {"retries": retries, "kwargs": kwargs})()
        self.retried: dict[str, Any] = {}

    def retry(self, **options: Any) -> Exception:
        self.retried = options
        return RuntimeError("retry")


def test_the_first_error_after_a_dozen_budget_waits_backs_off_once() -> None:
    task = FakeTask(retries=12, kwargs={})
    _retry_on_error(task)  # type: ignore[arg-type]
    assert task.retried["kwargs"] == {"errors": 1}
    assert task.retried["countdown"] <= get_settings().retry_backoff_base_s


def test_errors_double_the_back_off_up_to_the_maximum() -> None:
    settings = get_settings()
    task = FakeTask(retries=3, kwargs={"errors": 3, "x": 1})
    _retry_on_error(task, expires=None)  # type: ignore[arg-type]
    assert task.retried["kwargs"] == {"errors": 4, "x": 1} and task.retried["expires"] is None
    assert task.retried["countdown"] <= min(8 * settings.retry_backoff_base_s, 60.0)
    bad = FakeTask(retries=0, kwargs={"errors": "lots"})
    _retry_on_error(bad)  # type: ignore[arg-type]
    assert bad.retried["kwargs"]["errors"] == 1
