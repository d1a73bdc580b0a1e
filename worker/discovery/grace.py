"""Until when a final file found by the poll or a room look-up waits for its callback.

The vendor calls back when a file becomes final (transcoded); the wait, ``CALLBACK_GRACE_S``,
covers that callback arriving after the poll found the file. So the wait runs from the moment
the file became final. No list entry says when that was: ``upload_time``/``upload_timestamp``
is when the file reached the vendor's storage, *before* transcoding (``filestatus`` 0, 1, then
2 or 3). What bounds it:

* a file we saw non-final before became final after that sighting and no later than the
  sighting that first showed it final (``final_seen_ms``): the wait runs from there;
* a file first seen already final became final no later than that sighting, and, as the vendor
  transcodes in minutes (its guide: 5-10 minutes after the meeting), no later than its upload
  plus ``EXPECTED_TRANSCODE_S`` (the product's bound: later, a file counts as overdue and is
  looked up by room). Its callback was due by then; one uploaded longer ago than that plus the
  grace (a backlog whose callbacks were lost) goes out at once, a fresh one still waits.

The upload time is the vendor's clock. :data:`VENDOR_CLOCK_ALLOWANCE_MS` is added so that a
vendor clock behind ours by up to that much shortens no wait that should not be; one ahead of
ours (an upload time in the future) only moves the bound later, so such a file waits the whole
grace from when we saw it. Of the vendor's two upload stamps the later counts, and a
``upload_timestamp`` at exactly a midnight of the vendor's day (UTC+8) counts for nothing: the
guide's time-list example carries such day-only stamps beside exact ``upload_time`` values, and
a day-only stamp would make a fresh file look hours old.
"""

from __future__ import annotations

from collections.abc import Mapping

from worker.anyrtc.fields import parse_epoch_or_iso

__all__ = ["VENDOR_CLOCK_ALLOWANCE_MS", "callback_deadline_ms", "final_by_ms", "upload_bound_ms"]

#: How far behind ours the vendor's clock may be without a fresh file losing its wait.
VENDOR_CLOCK_ALLOWANCE_MS = 60_000

_DAY_MS = 86_400_000
#: Midnight in the vendor's time zone (UTC+8) is 16:00 UTC.
_VENDOR_MIDNIGHT_MS = 16 * 3_600_000


def upload_bound_ms(record: Mapping[str, str]) -> int | None:
    """The file's upload time as the vendor stamped it (epoch ms), the later of its two stamps;
    None when it carries neither (a callback alone) or only a day-only one."""
    stamps: list[int] = []
    raw_ms = record.get("upload_ms")
    if raw_ms:
        ms = int(raw_ms)
        if ms % _DAY_MS != _VENDOR_MIDNIGHT_MS:
            stamps.append(ms)
    iso_ms = _iso_ms(record.get("upload_time"))
    if iso_ms is not None:
        stamps.append(iso_ms)
    return max(stamps) if stamps else None


def _iso_ms(raw: str | None) -> int | None:
    """``upload_time`` in epoch ms; None when absent or malformed (it then bounds nothing)."""
    if not raw:
        return None
    try:
        return int(parse_epoch_or_iso(raw).timestamp() * 1000)
    except ValueError:
        return None


def final_by_ms(record: Mapping[str, str], *, transcode_ms: int, now_ms: int) -> int:
    """The latest moment the file can have become final (see the module docstring)."""
    final_seen = int(record.get("final_seen_ms") or now_ms)
    first_seen = int(record.get("first_seen_ms") or final_seen)
    if first_seen < final_seen:
        return final_seen  # seen non-final before: it turned final since
    upload = upload_bound_ms(record)
    if upload is None:
        return final_seen
    return min(final_seen, upload + transcode_ms + VENDOR_CLOCK_ALLOWANCE_MS)


def callback_deadline_ms(
    record: Mapping[str, str], *, grace_ms: int, transcode_ms: int, now_ms: int
) -> int:
    """When a final file without its callback stops waiting for it."""
    return final_by_ms(record, transcode_ms=transcode_ms, now_ms=now_ms) + grace_ms
