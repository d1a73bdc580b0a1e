import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.anyrtc.namerule import PLACEHOLDERS, NameRule

GOOD = [
    "ar_{roomid}_{date}_{random}",
    "xx_{random}_{date}_{time}_{roomid}_{userid}_xx.mp4",
    "xx_{random}_{date}_{roomid}_xx.mp4",
    "team-a_meeting_{roomid}",
    "a_b_c",
]


@pytest.mark.parametrize("rule", GOOD)
def test_good_rules_parse(rule: str) -> None:
    assert NameRule.parse(rule).rule == rule


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("", "must not be empty"),
        ("ar_{roomid}", "at least 2 underscore"),
        ("ar{roomid}", "at least 2 underscore"),
        ("ar_{roomId}_{date}", "unknown placeholder(s) {roomId}"),
        ("ar_{ts}_{date}", "unknown placeholder(s) {ts}"),
        ("{random}_{random}_{date}_{time}_{roomid}_{userid}", "has 6 placeholders"),
        ("ar_{roomid_{date}", "unbalanced"),
        ("ar_}roomid_{date}", "unbalanced"),
        ("ar_room id_{date}", "unsafe character(s) ' '"),
        ("ar/x_{roomid}_{date}", "unsafe character(s) '/'"),
        ("ar__{roomid}_{date}", "empty level"),
        ("_ar_{roomid}_{date}", "empty level"),
        ("ar_{roomid}_{date}_", "empty level"),
        ("ar_.._{date}", "'..'"),
        ("a_b_" + "c" * 130, "at most 128"),
    ],
)
def test_bad_rules_name_the_problem(rule: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        NameRule.parse(rule)
    assert fragment in str(info.value)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ValueError) as info:
        NameRule.parse("a b{foo}{bar}{random}{date}{time}{roomid}")
    message = str(info.value)
    for fragment in ("unknown placeholder", "has 6 placeholders", "unsafe character", "underscore"):
        assert fragment in message


def test_non_string_rule_is_rejected() -> None:
    assert NameRule.problems(42) == ["must be a string, not int"]


def test_render_fills_every_placeholder() -> None:
    when = datetime(2026, 11, 25, 14, 0, 5, tzinfo=UTC)
    rule = NameRule.parse("ar_{roomid}_{userid}_{date}_{time}_{random}")
    assert rule.render("R1", user_id="u7", when=when, random="Ab12") == (
        f"ar_R1_u7_20261125_{int(when.timestamp())}_Ab12"
    )


def test_render_mixed_recording_leaves_userid_empty_and_random_is_four_alnum() -> None:
    name = NameRule.parse("ar_{roomid}_{userid}_{random}").render("R1")
    assert re.fullmatch(r"ar_R1__[A-Za-z0-9]{4}", name)


_literal = st.text(alphabet="abcXYZ019-", min_size=1, max_size=6)


@given(
    st.lists(
        st.one_of(_literal, st.sampled_from([f"{{{p}}}" for p in PLACEHOLDERS])),
        min_size=3,
        max_size=8,
    )
)
def test_rules_built_from_valid_levels_are_valid_iff_placeholder_count_ok(
    levels: list[str],
) -> None:
    rule = "_".join(levels)
    count = sum(level.startswith("{") for level in levels)
    problems = NameRule.problems(rule)
    if count <= 5 and len(rule) <= 128:
        assert problems == []
        rendered = NameRule.parse(rule).render("room", user_id="u", random="abcd")
        assert "{" not in rendered and "}" not in rendered
    else:
        assert problems


@given(st.text(max_size=40))
def test_problems_never_crash_and_parse_agrees(rule: str) -> None:
    problems = NameRule.problems(rule)
    if problems:
        with pytest.raises(ValueError):
            NameRule.parse(rule)
    else:
        NameRule.parse(rule)
