"""The backlog's verdicts: which counts need an operator, and what the doctor says of them."""

from __future__ import annotations

from worker.cli.backlog import LATE_ACTION_S, STUCK_MESSAGE_S, Backlog

CLEAN = Backlog(0, 0, 0, 0, None, 0)


def test_a_clean_backlog_has_no_problems_and_a_summary() -> None:
    assert CLEAN.problems() == []
    assert CLEAN.summary() == (
        "late actions 0, expired leases 0, dead letters 0 (replayed 0), unpublished messages 0, "
        "unpublished booking events 0, rejected callbacks 0"
    )


def test_rejected_callbacks_and_fresh_unpublished_messages_are_information_only() -> None:
    assert Backlog(0, 0, 0, 3, STUCK_MESSAGE_S - 1, 12).problems() == []


def test_each_symptom_names_what_to_look_at() -> None:
    problems = Backlog(2, 1, 4, 5, STUCK_MESSAGE_S + 60, 0).problems()
    assert problems == [
        f"2 booked action(s) more than {LATE_ACTION_S:.0f}s past due and unclaimed: "
        "is a lifecycle worker running?",
        f"1 claimed action(s) more than {LATE_ACTION_S:.0f}s past their lease: "
        "is a lifecycle worker running?",
        "4 dead letter(s) not replayed: anyrtc-recorder deadletters list",
        f"5 file message(s) unpublished, the oldest claimed {STUCK_MESSAGE_S + 60:.0f}s ago: "
        "check the downstream broker and the discovery worker",
    ]


def test_replayed_dead_letters_need_nobody_and_rejects_are_always_said() -> None:
    backlog = Backlog(0, 0, 0, 0, None, 7, replayed_dead_letters=3)
    assert backlog.problems() == []
    assert "dead letters 0 (replayed 3)" in backlog.summary()
    assert backlog.rejects_line() == "7 callback(s) rejected: anyrtc-recorder rejects"
