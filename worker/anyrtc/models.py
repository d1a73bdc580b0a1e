"""Typed vendor payloads, tolerant of every variant listed in api-notes §5."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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

EPOCH_MS_THRESHOLD = 10**11  # 1973 in ms, year 5138 in s: anything above is milliseconds
# 9999-12-31T23:59:59.999Z, datetime's last instant: a larger epoch is not a date (and would
# raise OverflowError, which pydantic does not turn into a validation error).
MAX_EPOCH_MS = 253_402_300_799_999


class FileStatus:
    """``filestatus`` values."""

    NOT_TRANSCODED = 0
    TRANSCODING = 1
    DONE = 2
    FAILED = 3
    FINAL = frozenset({DONE, FAILED})


def epoch_ms(value: int | float) -> int:
    """An epoch value in seconds or milliseconds, as milliseconds (unit told by magnitude).

    Raises ValueError for infinities, NaN and anything outside 1970..9999.
    """
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    ms = int(number) if abs(number) >= EPOCH_MS_THRESHOLD else round(number * 1000)
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise ValueError(f"{value!r} is not an epoch time between 1970 and 9999")
    return ms


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


def parse_epoch_or_iso(value: Any) -> datetime:
    """Epoch seconds or ms (int or digit string) or ISO 8601, as an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError("must be epoch seconds or an ISO 8601 date, not a boolean")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(epoch_ms(value) / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("must not be empty")
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return datetime.fromtimestamp(epoch_ms(number) / 1000, tz=UTC)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is neither epoch seconds nor an ISO 8601 date") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{text!r} has no UTC offset")
        return parsed.astimezone(UTC)
    raise ValueError(f"must be epoch seconds or an ISO 8601 date, not {type(value).__name__}")


def normalize_download_url(url: str) -> str:
    """The identity of a recording file: scheme and host lower-cased, default port and
    fragment dropped, surrounding blanks stripped. Path and query are kept as given."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and not (
        (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    ):
        host = f"{host}:{port}"
    if parts.username or parts.password:
        host = f"{parts.username or ''}{':' + parts.password if parts.password else ''}@{host}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


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
    """The body the vendor POSTs to ``/AR/V1/av`` when a file is ready (api-notes §3)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    type: str
    media_type: str = Field("", alias="mediaType")
    user_id: str = Field("", alias="userId")
    group_id: str = Field(alias="groupId", min_length=1)
    file_name: str = Field("", alias="fileName")
    file_size: int | None = Field(None, alias="fileSize", ge=0)
    duration: int | None = Field(None, ge=0)
    start_time: datetime | None = Field(None, alias="startTime")
    end_time: datetime | None = Field(None, alias="endTime")
    download_url: str = Field(alias="downloadUrl", min_length=1)
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

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        return parse_epoch_or_iso(value)

    @field_validator("download_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.strip().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.strip()

    @property
    def identity(self) -> str:
        return normalize_download_url(self.download_url)
