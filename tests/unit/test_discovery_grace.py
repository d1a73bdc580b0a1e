"""Until when a poll-found final file waits for its callback (worker/discovery/grace.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from worker.discovery.grace import (
    VENDOR_CLOCK_ALLOWANCE_MS,
    callback_deadline_ms,
    final_by_ms,
    upload_bound_ms,
)

GRACE_MS = 60_000
TRANSCODE_MS = 900_000
NOW = 1_780_000_000_123  # not a vendor midnight


def first_seen_final(seen_ms: int, upload_ms: int | None = None, **extra: str) -> dict[str, str]:
    """A record whose first sighting (by the poll) already showed the file final."""
    record = {"first_seen_ms": str(seen_ms), "final_seen_ms": str(seen_ms), "status": "2"}
    if upload_ms is not None:
        record["upload_ms"] = str(upload_ms)
    return {**record, **extra}


def deadline(record: dict[str, str], now_ms: int = NOW) -> int:
    return callback_deadline_ms(record, grace_ms=GRACE_MS, transcode_ms=TRANSCODE_MS, now_ms=now_ms)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_a_file_uploaded_long_ago_goes_out_at_once() -> None:
    # Uploaded two hours ago: its callback, sent when it turned final, is long overdue.
    record = first_seen_final(NOW, NOW - 7_200_000)
    assert deadline(record) <= NOW


def test_a_fresh_file_waits_the_whole_grace_from_when_it_was_seen() -> None:
    record = first_seen_final(NOW, NOW - 60_000)
    assert deadline(record) == NOW + GRACE_MS


def test_a_file_uploaded_in_the_future_waits_the_whole_grace() -> None:
    # The vendor's clock runs ahead of ours: the stamp shortens nothing.
    record = first_seen_final(NOW, NOW + 3_600_000)
    assert deadline(record) == NOW + GRACE_MS


def test_the_bound_sits_a_transcode_time_and_the_clock_allowance_after_the_upload() -> None:
    upload = NOW - 1_000_000
    expected = upload + TRANSCODE_MS + VENDOR_CLOCK_ALLOWANCE_MS + GRACE_MS
    assert deadline(first_seen_final(NOW, upload)) == min(NOW + GRACE_MS, expected)
    assert NOW < expected < NOW + GRACE_MS  # the wait is shortened, not skipped


def test_a_vendor_clock_behind_ours_by_the_allowance_does_not_shorten_a_fresh_wait() -> None:
    # Uploaded just now by the vendor's clock, which runs a minute behind ours.
    record = first_seen_final(NOW, NOW - VENDOR_CLOCK_ALLOWANCE_MS - TRANSCODE_MS + 1)
    assert deadline(record) == NOW + GRACE_MS


def test_a_file_seen_transcoding_before_waits_from_when_it_was_seen_final() -> None:
    # It turned final between two of our sightings, whatever its upload time says.
    record = first_seen_final(NOW, NOW - 7_200_000)
    record["first_seen_ms"] = str(NOW - 120_000)
    assert deadline(record) == NOW + GRACE_MS


def test_without_an_upload_time_the_wait_runs_from_the_sighting() -> None:
    assert deadline(first_seen_final(NOW)) == NOW + GRACE_MS
    assert deadline({}) == NOW + GRACE_MS  # nothing known: from now


def test_a_day_only_upload_timestamp_counts_for_nothing() -> None:
    # The guide's time-list example: 1559145600000, a midnight in UTC+8, beside exact
    # upload_time values; taken as a time, it would make a fresh file look hours old.
    midnight = 1559145600000
    assert upload_bound_ms({"upload_ms": str(midnight)}) is None
    fresh = midnight + 9 * 3_600_000
    record = first_seen_final(fresh, midnight)
    assert deadline(record, fresh) == fresh + GRACE_MS
    record["upload_time"] = iso(fresh - 30_000)  # the exact stamp still counts
    assert deadline(record, fresh) == fresh + GRACE_MS
    assert upload_bound_ms(record) == fresh - 30_000


def test_the_later_of_the_two_upload_stamps_counts() -> None:
    early, late = NOW - 7_200_000, NOW - 10_000
    assert upload_bound_ms({"upload_ms": str(early), "upload_time": iso(late)}) == late
    assert upload_bound_ms({"upload_ms": str(late), "upload_time": iso(early)}) == late
    # An old upload_timestamp beside a fresh upload_time: the file waits.
    record = first_seen_final(NOW, early, upload_time=iso(late))
    assert deadline(record) == NOW + GRACE_MS


def test_a_malformed_upload_time_bounds_nothing() -> None:
    assert upload_bound_ms({"upload_time": "yesterday"}) is None
    assert upload_bound_ms({"upload_time": "2019-05-30T09:35:19"}) is None  # no offset
    assert upload_bound_ms({"upload_ms": str(NOW - 5), "upload_time": "bad"}) == NOW - 5


@given(
    seen=st.integers(10**12, 2 * 10**12),
    first_before=st.integers(0, 10**7),
    upload_offset=st.none() | st.integers(-(10**8), 10**8),
)
def test_the_wait_never_ends_later_than_the_grace_after_the_final_sighting(
    seen: int, first_before: int, upload_offset: int | None
) -> None:
    record = first_seen_final(seen, None if upload_offset is None else seen + upload_offset)
    record["first_seen_ms"] = str(seen - first_before)
    bound = final_by_ms(record, transcode_ms=TRANSCODE_MS, now_ms=seen)
    assert bound <= seen
    # It is shortened only for a file first seen final with an upload a transcode time (and
    # the allowance) before the sighting; never by more than that says.
    if bound < seen:
        assert first_before == 0 and upload_offset is not None
        assert bound == seen + upload_offset + TRANSCODE_MS + VENDOR_CLOCK_ALLOWANCE_MS
