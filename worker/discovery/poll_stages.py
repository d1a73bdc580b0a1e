"""The stages of a time poll and the cursor that saves where one is (no vendor calls here).

Each poll run lists, within the budget:

1. ``head``: page 1 of the window ``[watermark - POLL_OVERLAP_S, now]``. The vendor's ``cnt``
   says how many files the window holds; ``seen`` says how many of them we have listed before.
   Equal (the usual case once things are quiet): nothing new anywhere in the window, and this
   one call was the whole discovery cost of the run.
2. ``fresh``: otherwise every page of ``[watermark, now]``, where new uploads are; but only once
   that region is at least one typical transcode time old. New uploads are not final before
   that, so listing them earlier would only mean listing them again later: the poll ends
   ("deferred") and the watermark stays where it is, so nothing is skipped. When every file of
   the head page was uploaded since the watermark, that page is also page 1 of this region
   (the vendor lists by upload time, the simulator oldest first, the guide's example newest
   first: either way no older file sorts among them), so ``fresh`` starts at page 2 and a
   backlog's drain saves a call; were the order anything else, ``rest`` below still lists
   whatever ``fresh`` missed.
3. ``rest``: if files are still unseen after that, they are late uploads inside the overlap:
   pages 2.. of the whole window.
4. ``follow``: non-final files whose re-list is due (and that this run has not listed yet), in
   windows holding at most ``POLL_PAGE_MAX`` known files each (:func:`plan_follow_windows`), so
   most take one page.

:class:`PollCursor` is the stage, window and page; the poller saves it in ``poll:cursor`` before
each call, so a poll that stops halfway resumes at the same page of the same stage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from worker.anyrtc.models import VodPage
from worker.discovery.registry import FileRegistry

__all__ = ["PollCursor", "next_stage", "plan_follow_windows"]

# Upload windows of re-lists get this much slack each side (vendor ms rounding).
_PAD_MS = 1000


@dataclass(frozen=True)
class PollCursor:
    """A poll under way: its stage, windows and the next page (all times epoch ms)."""

    stage: str  # head | fresh | rest | follow
    beg_ms: int
    end_ms: int
    fresh_ms: int
    page: int = 1
    total: int = 0
    follow: tuple[tuple[int, int], ...] | None = None
    segment: int = 0
    deferred: bool = False

    def window(self) -> tuple[int, int] | None:
        """The upload window the next call lists (None: this stage has nothing to list)."""
        if self.stage in ("head", "rest"):
            return self.beg_ms, self.end_ms
        if self.stage == "fresh":
            return self.fresh_ms, self.end_ms
        if self.follow is None or self.segment >= len(self.follow):
            return None
        return self.follow[self.segment]

    def as_hash(self) -> dict[str, str]:
        return {
            "stage": self.stage,
            "beg_ms": str(self.beg_ms),
            "end_ms": str(self.end_ms),
            "fresh_ms": str(self.fresh_ms),
            "page": str(self.page),
            "total": str(self.total),
            "follow": json.dumps(self.follow) if self.follow is not None else "",
            "segment": str(self.segment),
            "deferred": "1" if self.deferred else "",
        }

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> PollCursor:
        follow = json.loads(data["follow"]) if data.get("follow") else None
        return cls(
            stage=data["stage"],
            beg_ms=int(data["beg_ms"]),
            end_ms=int(data["end_ms"]),
            fresh_ms=int(data["fresh_ms"]),
            page=int(data["page"]),
            total=int(data["total"]),
            follow=tuple((int(b), int(e)) for b, e in follow) if follow is not None else None,
            segment=int(data["segment"]),
            deferred=bool(data.get("deferred")),
        )


def next_stage(cursor: PollCursor, page: VodPage | None, registry: FileRegistry) -> PollCursor:
    """Where the poll goes after ``page`` (None: the stage had nothing to list)."""
    more = page is not None and page.has_more and bool(page.files)
    if cursor.stage == "head":
        assert page is not None
        total = page.total
        if not more or _all_seen(cursor, total, registry):
            return replace(cursor, stage="follow", page=1, total=total)
        if cursor.fresh_ms <= cursor.beg_ms:
            return replace(cursor, stage="rest", page=2, total=total)
        if cursor.end_ms - cursor.fresh_ms < registry.typical_transcode_ms():
            return replace(cursor, stage="follow", page=1, total=total, deferred=True)
        first = 2 if _all_uploaded_since(page, cursor.fresh_ms) else 1
        return replace(cursor, stage="fresh", page=first, total=total)
    if more:
        return replace(cursor, page=cursor.page + 1)
    if cursor.stage == "fresh":
        if _all_seen(cursor, cursor.total, registry):
            return replace(cursor, stage="follow", page=1)
        return replace(cursor, stage="rest", page=2)
    if cursor.stage == "rest":
        return replace(cursor, stage="follow", page=1)
    # follow: next window, or done.
    if cursor.follow is None or cursor.segment + 1 >= len(cursor.follow) or page is None:
        return replace(cursor, stage="done")
    return replace(cursor, segment=cursor.segment + 1, page=1)


def _all_uploaded_since(page: VodPage, since_ms: int) -> bool:
    """Whether every file of ``page`` has an upload time (as listed) at or after ``since_ms``."""
    return bool(page.files) and all(
        f.upload_timestamp_ms is not None and f.upload_timestamp_ms >= since_ms for f in page.files
    )


def _all_seen(cursor: PollCursor, total: int, registry: FileRegistry) -> bool:
    return registry.seen_between(cursor.beg_ms, cursor.end_ms) >= total


def plan_follow_windows(
    uploads: list[int], count_between: Callable[[int, int], int], page_max: int
) -> list[tuple[int, int]]:
    """Group upload times into windows of at most ``page_max`` known files each.

    ``count_between(beg, end)`` counts the known files with an upload time in ``[beg, end]``.
    A window only grows while it stays within one page; a lone crowded instant still gets its
    own window (it then takes more than one page).
    """
    windows: list[tuple[int, int]] = []
    for upload in sorted(uploads):
        if windows:
            beg, end = windows[-1]
            if upload <= end:
                continue
            if count_between(beg, upload + _PAD_MS) <= page_max:
                windows[-1] = (beg, upload + _PAD_MS)
                continue
        start = upload - _PAD_MS if not windows else max(upload - _PAD_MS, windows[-1][1] + 1)
        windows.append((start, upload + _PAD_MS))
    return windows
