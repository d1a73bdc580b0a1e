"""Typed vendor payloads, tolerant of every variant listed in api-notes §5."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from worker.anyrtc.fields import (
    EPOCH_MS_THRESHOLD,
    MAX_EPOCH_MS,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
    check_text,
    china_local_time,
    download_url,
    epoch_ms,
    normalize_download_url,
    parse_epoch_or_iso,
    plausible_time,
)

__all__ = [
    "EPOCH_MS_THRESHOLD",
    "MAX_EPOCH_MS",
    "CallbackPayload",
    "FileStatus",
    "RecordResult",
    "VodFile",
    "VodPage",
    "epoch_ms",
    "normalize_download_url",
    "parse_epoch_or_iso",
]

MAX_FILE_SIZE = 2**53  # 8 PiB, and the largest integer every JSON reader keeps exact
MAX_DURATION_S = 7 * 24 * 3600  # a week: no meeting records longer


class FileStatus:
    """``filestatus`` values."""

    NOT_TRANSCODED = 0
    TRANSCODING = 1
    DONE = 2
    FAILED = 3
    FINAL = frozenset({DONE, FAILED})


def _file_count(value: Any) -> int:
    """``cnt``: a non-negative whole number, as an int or a digit string (ValueError otherwise;
    ``int()`` alone would take True, truncate 3.5 and raise OverflowError for infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"cnt must be a whole number, not {type(value).__name__}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"cnt must be a whole number, not {value!r}") from None
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise ValueError(f"cnt must be a whole number of files, not {value!r}")
    return int(number)


class _Lenient(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class VodFile(_Lenient):
    """One file from getVodListByTime or getVodInfoByRoomId."""

    file_id: str | None = Field(None, alias="fileid")
    file_size: int = Field(0, alias="filesize")
    file_status: int = Field(alias="filestatus")
    file_type: str = Field("mp4", alias="filetype")
    upload_time: str | None = None
    upload_timestamp_ms: int | None = Field(None, alias="upload_timestamp")
    room_id: str | None = None
    download_url: str
    start_time: int | None = None
    end_time: int | None = None
    file_duration: int | None = None

    @field_validator("upload_timestamp_ms", mode="before")
    @classmethod
    def _to_ms(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        return epoch_ms(float(value))

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _to_seconds(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        return epoch_ms(float(value)) // 1000

    @field_validator("download_url")
    @classmethod
    def _url_present(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("download_url must not be empty")
        return value.strip()

    @property
    def identity(self) -> str:
        """The normalised download URL: the key every source shares."""
        return normalize_download_url(self.download_url)

    @property
    def is_final(self) -> bool:
        return self.file_status in FileStatus.FINAL


class VodPage(_Lenient):
    """One answer of a query endpoint: a page of files and the total count."""

    files: list[VodFile]
    total: int
    invalid: list[str] = Field(default_factory=list)
    page_num: int = 1
    page_max: int | None = None
    request_id: int | str | None = None
    message: str = ""

    @property
    def has_more(self) -> bool:
        """Whether later pages exist (only meaningful for getVodListByTime)."""
        if self.page_max is None:
            return False
        return self.page_num * self.page_max < self.total

    @classmethod
    def from_payload(
        cls, payload: dict[str, Any], *, page_num: int = 1, page_max: int | None = None
    ) -> VodPage:
        """Parse a ``code`` 200 envelope (``content``/``conent``, ``cnt`` nested or flat).

        A file entry that cannot be read is left out and described in ``invalid``, so one bad
        entry never hides the good ones beside it.
        """
        content = payload.get("content")
        if content is None:
            content = payload.get("conent")
        content = content or {}
        if not isinstance(content, dict):
            raise ValueError("content must be an object")
        data = content.get("data") or []
        if not isinstance(data, list):
            raise ValueError("content.data must be a list")
        cnt = content.get("cnt")
        if isinstance(cnt, dict):
            cnt = cnt.get("cnt")
        total = _file_count(cnt) if cnt not in (None, "") else len(data)
        files: list[VodFile] = []
        invalid: list[str] = []
        for index, item in enumerate(data):
            try:
                files.append(VodFile.model_validate(item))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}"
                    for e in exc.errors()
                )
                invalid.append(f"entry {index}: {problems}")
        return cls(
            files=files,
            total=total,
            invalid=invalid,
            page_num=page_num,
            page_max=page_max,
            request_id=payload.get("requestid"),
            message=str(payload.get("message", payload.get("msg", "")) or ""),
        )


class RecordResult(_Lenient):
    """The answer of startrecord/stoprecord."""

    result: str

    @property
    def ok(self) -> bool:
        return self.result == "ok"


class CallbackPayload(BaseModel):
    """The body the vendor POSTs to ``/AR/V1/av`` when a file is ready (api-notes §3).

    Every field is checked before the callback is acknowledged (see :mod:`worker.anyrtc.fields`).
    Give ``context={"hosts": frozenset(...)}`` to accept download URLs on those hosts only.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    type: str
    media_type: str = Field("", alias="mediaType")
    user_id: str = Field("", alias="userId")
    group_id: str = Field(alias="groupId")
    file_name: str = Field("", alias="fileName")
    file_size: int | None = Field(None, alias="fileSize", ge=0, le=MAX_FILE_SIZE)
    duration: int | None = Field(None, ge=0, le=MAX_DURATION_S)
    start_time: datetime | None = Field(None, alias="startTime")
    end_time: datetime | None = Field(None, alias="endTime")
    download_url: str = Field(alias="downloadUrl")
    user_data: str | None = Field(None, alias="userData")

    @field_validator("type", mode="before")
    @classmethod
    def _type_as_string(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in {"1", "2", "3"}:
            raise ValueError('must be "1" (mixed), "2" (per user) or "3" (frame image)')
        return value

    @field_validator("user_id", "media_type", "file_name", mode="before")
    @classmethod
    def _int_ids_as_strings(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return "" if value is None else value

    @field_validator("file_size", "duration", mode="before")
    @classmethod
    def _whole_numbers_only(cls, value: Any) -> Any:
        # pydantic would take True as 1 and "1e3" nowhere consistently: JSON numbers or digits.
        if isinstance(value, bool):
            raise ValueError("must be a whole number, not a boolean")
        if isinstance(value, str) and len(value.strip()) > 20:
            raise ValueError("is too long to be a plausible number")
        return value

    @field_validator("group_id")
    @classmethod
    def _room_id(cls, value: str) -> str:
        return check_text(value, max_chars=MAX_ID_CHARS, required=True)

    @field_validator("user_id", "media_type")
    @classmethod
    def _short_text(cls, value: str) -> str:
        return check_text(value, max_chars=MAX_ID_CHARS)

    @field_validator("file_name")
    @classmethod
    def _file_name(cls, value: str) -> str:
        return check_text(value, max_chars=MAX_URL_CHARS)

    @field_validator("user_data")
    @classmethod
    def _user_data(cls, value: str | None) -> str | None:
        # Free text the booking system chose (JSON, often): new lines are fine, size is not.
        return (
            None
            if value is None
            else check_text(value, max_chars=MAX_TEXT_CHARS, single_line=False)
        )

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        local = china_local_time(value) if isinstance(value, str) else None
        return plausible_time(local or parse_epoch_or_iso(value))

    @field_validator("download_url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        hosts = (info.context or {}).get("hosts") or frozenset()
        return download_url(value, hosts)

    @property
    def identity(self) -> str:
        return normalize_download_url(self.download_url)
