"""The beat health check's reading of its schedule file (no Redis, no Celery)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from worker.cli import main
from worker.cli.health import schedule_age


def test_the_newest_file_of_the_schedule_counts(tmp_path: Path) -> None:
    base = tmp_path / "beat-schedule"
    assert schedule_age(str(base), time.time()) is None
    (tmp_path / "beat-schedule.dat").write_text("x")
    old = tmp_path / "beat-schedule.dir"
    old.write_text("x")
    os.utime(old, (time.time() - 900, time.time() - 900))
    assert schedule_age(str(base), time.time()) < 5  # type: ignore[operator]


def test_beat_health_exit_codes(tmp_path: Path, capsys: object) -> None:
    schedule = tmp_path / "s"
    assert main(["healthcheck", "beat", f"--schedule={schedule}"]) == 1
    schedule.write_text("x")
    assert main(["healthcheck", "beat", f"--schedule={schedule}"]) == 0
    os.utime(schedule, (time.time() - 700, time.time() - 700))
    assert main(["healthcheck", "beat", f"--schedule={schedule}", "--max-age=600"]) == 1
