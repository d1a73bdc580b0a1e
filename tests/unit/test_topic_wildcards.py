"""The README's account of topic wildcards is what the installed kombu does (its virtual
transports, Redis among them, match bindings with these regular expressions)."""

from __future__ import annotations

import re

import pytest
from kombu.transport.virtual.exchange import TopicExchange

from tests.support.readme import README

KEYS = ["booking", "booking.recording", "booking.x.y", "recording", "recording.ready",
        "recording.ready.x"]  # fmt: skip


def _matches(pattern: str) -> list[str]:
    exchange = TopicExchange(None)
    regex = exchange.key_to_pattern(pattern)
    return [key for key in KEYS if exchange._match(regex, key)]


def test_star_is_exactly_one_non_empty_word_and_hash_any_text() -> None:
    exchange = TopicExchange(None)
    assert exchange.key_to_pattern("a.*") == r"^a\.[^\.]+$"
    assert exchange.key_to_pattern("a.#") == r"^a\..*?$"


@pytest.mark.parametrize(
    ("pattern", "matched"),
    [
        ("recording.*", ["recording.ready"]),
        ("booking.#", ["booking.recording", "booking.x.y"]),  # not a bare "booking"
        ("#", KEYS),
    ],
)
def test_the_readme_examples_hold(pattern: str, matched: list[str]) -> None:
    assert _matches(pattern) == matched


def test_the_readme_says_so() -> None:
    text = " ".join(README.read_text().split())
    assert "`*` becomes `[^.]+`, **exactly one** non-empty word" in text
    assert (
        "`booking.#` matches `booking.recording` (and any longer key) but **not a bare `booking`**"
        in text
    )
    assert not re.search(r"`\*` match(es)? several words", text)
