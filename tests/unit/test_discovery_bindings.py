"""DOWNSTREAM_QUEUES parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.downstream import QueueBinding, audit_binding, parse_downstream_queues


def test_documented_example() -> None:
    parsed = parse_downstream_queues(
        "archive=recording.*, transcribe=recording.ready,alerts=recording.failed|recording.x"
    )
    assert parsed == [
        QueueBinding("archive", ("recording.*",)),
        QueueBinding("transcribe", ("recording.ready",)),
        QueueBinding("alerts", ("recording.failed", "recording.x")),
    ]


def test_empty_and_bare_names() -> None:
    assert parse_downstream_queues("") == []
    assert parse_downstream_queues(" , ") == []
    assert parse_downstream_queues("all") == [QueueBinding("all", ("recording.*",))]


def test_repeated_queue_merges_patterns() -> None:
    assert parse_downstream_queues("a=recording.ready,a=recording.failed,a=recording.ready") == [
        QueueBinding("a", ("recording.ready", "recording.failed"))
    ]


@pytest.mark.parametrize(
    "text",
    ["bad name=recording.*", "a=", "a=recording..ready", "a=recording.re ady", "=recording.*",
     "a=recording.ready|", "x" * 201],
)  # fmt: skip
def test_bad_entries_name_the_problem(text: str) -> None:
    with pytest.raises(ValueError, match="DOWNSTREAM_QUEUES"):
        parse_downstream_queues(text)


def test_audit_queue_takes_everything() -> None:
    assert audit_binding("recordings") == QueueBinding(
        "recordings.audit", ("recording.*", "booking.*")
    )


names = st.text("abcxyz019_.:-", min_size=1, max_size=20)
words = st.text("abcxyz019_-", min_size=1, max_size=8) | st.sampled_from(["*", "#"])
patterns = st.lists(words, min_size=1, max_size=4).map(".".join)


@given(st.dictionaries(names, st.lists(patterns, min_size=1, max_size=3, unique=True), max_size=5))
def test_format_round_trips(wanted: dict[str, list[str]]) -> None:
    text = ",".join(f"{name}={'|'.join(pats)}" for name, pats in wanted.items())
    parsed = parse_downstream_queues(text)
    assert {b.queue: list(b.patterns) for b in parsed} == wanted
