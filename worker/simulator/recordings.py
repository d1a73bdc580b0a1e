"""Recorded files: how the vendor creates them, how their status moves, how they are shown."""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.anyrtc.namerule import NameRule

__all__ = ["FileTiming", "RecordedFile", "create_files", "random_chars"]

_ALPHANUMERIC = string.ascii_letters + string.digits
_HAS_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")
# ~64 kB/s: about what a 512 kbit/s meeting mix weighs.
_BYTES_PER_SECOND = (48_000, 80_000)


def random_chars(rng: random.Random, count: int) -> str:
    """``count`` random letters and digits."""
    return "".join(rng.choices(_ALPHANUMERIC, k=count))


@dataclass(frozen=True)
class FileTiming:
    """The timing settings in force when a file is created (later changes do not move it)."""

    upload_delay_s: float
    listing_lag_s: float
    transcode_delay_s: float
    transcode_fail_rate: float


@dataclass
class RecordedFile:
    """One file of one recording; its status is derived from the clock, never stored."""

    fileid: str
    app_id: str
    room_id: str
    type: str
    media_type: str
    user_id: str
    file_name: str
    start: float
    end: float
    upload_at: float
    visible_at: float
    transcode_delay_s: float
    fails: bool
    filesize: int
    download_url: str
    user_data: str
    path: str = ""
    callback: str = "pending"  # pending -> sent | dropped | skipped

    @property
    def upload_ms(self) -> int:
        """Upload time in epoch milliseconds: what listings filter and sort on."""
        return round(self.upload_at * 1000)

    @property
    def duration(self) -> int:
        """Whole seconds recorded, at least 1."""
        return max(1, round(self.end - self.start))

    @property
    def final_status(self) -> int:
        """2 (transcoded) or 3 (failed), decided when the file was created."""
        return 3 if self.fails else 2

    def status(self, now: float) -> int | None:
        """0 uploaded, 1 transcoding, then the final status; None before the upload."""
        if now < self.upload_at:
            return None
        if now < self.upload_at + self.transcode_delay_s / 2:
            return 0
        if now < self.upload_at + self.transcode_delay_s:
            return 1
        return self.final_status

    def final_at(self) -> float:
        """When the file reaches its final status."""
        return self.upload_at + self.transcode_delay_s

    def listed_fields(self, now: float, variant: str, *, by_room: bool) -> dict[str, Any]:
        """The file as the query endpoints show it, in the field order of the guide's examples."""
        seconds = variant == "seconds"
        upload_ts: int | str = str(self.upload_ms // 1000) if seconds else self.upload_ms
        start: int | str = str(int(self.start)) if seconds else int(self.start)
        end: int | str = str(int(self.end)) if seconds else int(self.end)
        item: dict[str, Any] = {}
        if by_room:
            item["fileid"] = self.fileid
        item.update(
            filesize=self.filesize,
            filestatus=self.status(now),
            filetype="mp4",
            upload_time=_iso(self.upload_ms),
            upload_timestamp=upload_ts,
        )
        if by_room:
            item["room_id"] = self.room_id
        item.update(
            download_url=self.download_url,
            start_time=start,
            end_time=end,
            file_duration=self.duration,
        )
        return item

    def callback_body(self) -> dict[str, Any]:
        """The callback JSON, field for field as the guide's example."""
        return {
            "type": self.type,
            "mediaType": self.media_type,
            "userId": self.user_id,
            "groupId": self.room_id,
            "startTime": str(int(self.start)),
            "endTime": str(int(self.end)),
            "fileName": self.file_name,
            "fileSize": self.filesize,
            "duration": self.duration,
            "downloadUrl": self.download_url,
            "userData": self.user_data,
        }

    def admin_view(self, now: float) -> dict[str, Any]:
        """Everything about the file, for ``GET /_admin/files``."""
        return {
            "fileid": self.fileid,
            "app_id": self.app_id,
            "room_id": self.room_id,
            "type": self.type,
            "media_type": self.media_type,
            "user_id": self.user_id,
            "file_name": self.file_name,
            "path": self.path,
            "start_time": self.start,
            "end_time": self.end,
            "file_duration": self.duration,
            "filesize": self.filesize,
            "upload_at": self.upload_at,
            "upload_timestamp": self.upload_ms,
            "visible_at": self.visible_at,
            "visible": now >= self.visible_at,
            "status": self.status(now),
            "final_status": self.final_status,
            "final_at": self.final_at(),
            "download_url": self.download_url,
            "user_data": self.user_data,
            "callback": self.callback,
        }


def create_files(
    rng: random.Random,
    *,
    app_id: str,
    room_id: str,
    start: float,
    end: float,
    user_data: str,
    name_rule: str | None,
    path: str,
    per_user_files: int,
    timing: FileTiming,
    base_url: str,
) -> list[RecordedFile]:
    """The mixed file plus ``per_user_files`` per-user files of a recording stopped at ``end``."""
    rule = NameRule.parse(name_rule) if name_rule else None
    upload_at = end + timing.upload_delay_s
    users = [""] + [f"u{i}" for i in range(1, per_user_files + 1)]
    files = []
    for user_id in users:
        fileid = random_chars(rng, 20)
        duration = max(1, round(end - start))
        share = 1 if not user_id else 2  # a single stream weighs about half the mix
        files.append(
            RecordedFile(
                fileid=fileid,
                app_id=app_id,
                room_id=room_id,
                type="2" if user_id else "1",
                media_type="audio/video",
                user_id=user_id,
                file_name=_file_name(rng, rule, room_id, user_id, start),
                start=start,
                end=end,
                upload_at=upload_at,
                visible_at=upload_at + timing.listing_lag_s,
                transcode_delay_s=timing.transcode_delay_s,
                fails=rng.random() < timing.transcode_fail_rate,
                filesize=duration * rng.randint(*_BYTES_PER_SECOND) // share + 1024,
                download_url=f"{base_url}/vod/{fileid}.mp4",
                user_data=user_data,
                path=path,
            )
        )
    return files


def _file_name(
    rng: random.Random, rule: NameRule | None, room_id: str, user_id: str, start: float
) -> str:
    if rule is None:
        return random_chars(rng, 20) + ".mp4"
    name = rule.render(
        room_id,
        user_id=user_id or None,
        when=datetime.fromtimestamp(start, UTC),
        random=random_chars(rng, 4),
    )
    return name if _HAS_EXTENSION.search(name) else name + ".mp4"


def _iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{epoch_ms % 1000:03d}Z"
