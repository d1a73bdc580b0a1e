"""plan_follow_windows: re-list windows for due non-final files, one page each where possible."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from worker.discovery.poll_stages import plan_follow_windows


def counter(known: list[int]) -> Callable[[int, int], int]:
    ordered = sorted(known)

    def count(beg: int, end: int) -> int:
        return bisect.bisect_right(ordered, end) - bisect.bisect_left(ordered, beg)

    return count


def test_close_uploads_share_a_window_until_it_would_need_a_second_page() -> None:
    known = [1000, 1500, 2000, 9000, 9100]
    assert plan_follow_windows([1000, 2000], counter(known), page_max=3) == [(0, 2000)]
    assert plan_follow_windows([1000, 9000], counter(known), page_max=3) == [
        (0, 2000),
        (8000, 10000),
    ]
    assert plan_follow_windows([], counter(known), page_max=3) == []


@given(
    st.lists(st.integers(0, 100_000), max_size=40),
    st.lists(st.integers(0, 100_000), max_size=80),
    st.integers(1, 10),
)
def test_every_due_file_is_covered_by_ordered_disjoint_windows(
    due: list[int], others: list[int], page_max: int
) -> None:
    known = due + others
    count = counter(known)
    windows = plan_follow_windows(due, count, page_max)
    for upload in due:
        assert any(beg <= upload <= end for beg, end in windows)
    for (_, end), (beg, _) in itertools.pairwise(windows):
        assert end < beg
    for beg, end in windows:
        # More than a page only for due files within one pad (1 s) of each other: the window
        # never grew past its first due file.
        due_inside = [u for u in due if beg <= u <= end]
        assert count(beg, end) <= page_max or max(due_inside) - min(due_inside) <= 1000
