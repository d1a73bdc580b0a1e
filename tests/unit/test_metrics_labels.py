"""The vendor-call ``code`` label stays a bounded set whatever the vendor answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.anyrtc import results
from worker.metrics.recorder import OTHER_CODE, code_label


def test_known_results_and_query_codes_are_kept() -> None:
    for code in (results.IP_NOT_ALLOWED, results.ALREADY_RECORDING, results.OK, "299", "501", ""):
        assert code_label(code) == code


def test_free_text_becomes_other() -> None:
    assert code_label("请求失败 room busy 2026-12-07T10:00:01") == OTHER_CODE
    assert code_label("123456789") == OTHER_CODE


@given(st.text(max_size=60))
def test_label_values_are_bounded(code: str) -> None:
    label = code_label(code)
    known = {getattr(results, n) for n in results.__all__ if n.isupper()}
    numeric = label.isascii() and label.isdigit() and len(label) <= 4
    assert label in known | {"", OTHER_CODE} or numeric
