"""AnyRTCClient: start/stop recording and the two query endpoints, exactly as the vendor documents.

Every query call goes through ``QueryGate.before_query`` first, so the global limiter sees each
attempt (the one 282 retry included). How a call travels, and how its transport failures become
errors, is :mod:`worker.anyrtc.transport`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from pydantic import SecretStr, ValidationError

from worker.anyrtc.gate import OpenGate, QueryGate
from worker.anyrtc.models import RecordResult, VodPage
from worker.anyrtc.namerule import NameRule
from worker.anyrtc.signing import make_random, sign
from worker.anyrtc.transport import (
    DEFAULT_POOL_SIZE,
    ConnectionWarmer,
    clip,
    mount_pool,
    new_session,
    post_json,
    prepare_post,
    send_prepared,
)
from worker.errors import (
    AnyRTCError,
    ProtocolError,
    RateLimited,
    RecordCallFailed,
    error_for_code,
)

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["DEFAULT_PAGE_MAX", "LIST_BY_ROOM", "LIST_BY_TIME", "AnyRTCClient", "RecordCall"]

log = logging.getLogger(__name__)

LIST_BY_TIME = "getVodListByTime"
LIST_BY_ROOM = "getVodInfoByRoomId"
START = "startrecord"
STOP = "stoprecord"
DEFAULT_PAGE_MAX = 50
MAX_PAGE_MAX = 100


def _user_data_string(user_data: str | Mapping[str, Any] | None) -> str | None:
    if user_data is None or isinstance(user_data, str):
        return user_data
    if isinstance(user_data, Mapping):
        return json.dumps(user_data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    raise TypeError(f"user_data must be a str or a dict, not {type(user_data).__name__}")


def _check_path(path: str) -> str:
    if not path or path.startswith("/") or ".." in path.split("/") or "\\" in path:
        raise ValueError(f"path {path!r} must be a relative storage path without '..'")
    return path


def _check_ms(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be epoch milliseconds as a non-negative int")
    return value


@dataclass(frozen=True)
class RecordCall:
    """A start or stop call built ahead of its moment (:meth:`AnyRTCClient.prepare_record`):
    what it asks for (``endpoint``, ``room_id``, ``body``, ``room_type``) and the encoded
    request, sent by :meth:`AnyRTCClient.send_record`."""

    endpoint: str
    room_id: str
    room_type: str
    body: Mapping[str, str] | None
    request: requests.PreparedRequest


class AnyRTCClient:
    """A client for one anyRTC app id; safe to share between threads."""

    def __init__(
        self,
        app_id: str,
        vod_token: SecretStr | str,
        *,
        record_api_url: str = "https://www.anyrtc.io/anyapi/v1",
        vod_api_url: str = "http://vdn.anyrtc.cc/oauth/anyapi/v1",
        room_type: str = "Meet",
        timeout_s: float = 10.0,
        query_gate: QueryGate | None = None,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if not app_id:
            raise ValueError("app_id must not be empty")
        self.app_id = app_id
        self._vod_token = vod_token if isinstance(vod_token, SecretStr) else SecretStr(vod_token)
        self.record_api_url = record_api_url.rstrip("/")
        self.vod_api_url = vod_api_url.rstrip("/")
        self.room_type = room_type
        self.timeout_s = timeout_s
        self.query_gate: QueryGate = query_gate or OpenGate()
        self.clock = clock
        self.session = session or new_session(pool_size)
        self._warmer = ConnectionWarmer(self.session, self.record_api_url, timeout_s)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        query_gate: QueryGate | None = None,
        clock: Callable[[], float] = time.time,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> AnyRTCClient:
        """A client configured from :class:`config.Settings`."""
        return cls(
            settings.anyrtc_app_id,
            settings.anyrtc_vod_token,
            record_api_url=settings.anyrtc_record_api_url,
            vod_api_url=settings.anyrtc_vod_api_url,
            room_type=settings.anyrtc_room_type,
            timeout_s=settings.anyrtc_http_timeout_s,
            query_gate=query_gate,
            clock=clock,
            pool_size=pool_size,
        )

    def __repr__(self) -> str:
        return f"AnyRTCClient(app_id={self.app_id!r}, vod_token=SecretStr('**********'))"

    def close(self) -> None:
        self.session.close()

    def size_pool(self, pool_size: int) -> None:
        """Keep up to ``pool_size`` connections per vendor host (one per thread that may call
        at once); connections of the previous pool are closed. Call before the calls start."""
        old = self.session.get_adapter(self.record_api_url)
        mount_pool(self.session, pool_size)
        old.close()

    # -- start / stop -------------------------------------------------------------------------

    def start_record(
        self,
        room_id: str,
        *,
        user_data: str | Mapping[str, Any] | None = None,
        name_rule: str | NameRule | None = None,
        path: str | None = None,
        room_type: str | None = None,
    ) -> RecordResult:
        """Start recording ``room_id``; raise RecordCallFailed unless the vendor says ``ok``."""
        call = self.prepare_record(
            START, room_id, user_data=user_data, name_rule=name_rule, path=path, room_type=room_type
        )
        return self.send_record(call)

    def stop_record(self, room_id: str, *, room_type: str | None = None) -> RecordResult:
        """Stop recording ``room_id``; raise RecordCallFailed unless the vendor says ``ok``."""
        return self.send_record(self.prepare_record(STOP, room_id, room_type=room_type))

    def prepare_record(
        self,
        endpoint: str,
        room_id: str,
        *,
        user_data: str | Mapping[str, Any] | None = None,
        name_rule: str | NameRule | None = None,
        path: str | None = None,
        room_type: str | None = None,
    ) -> RecordCall:
        """Check and encode a ``startrecord`` or ``stoprecord`` call (``endpoint``), to send
        later; the start's options are ignored for a stop. Raises ValueError/TypeError for
        parameters the vendor would refuse, as the calls themselves do."""
        if endpoint not in (START, STOP):
            raise ValueError(f"unknown record endpoint {endpoint!r}")
        if not isinstance(room_id, str) or not room_id:
            raise ValueError("room_id must be a non-empty string")
        body: dict[str, str] | None = None
        if endpoint == START:
            body = {}
            if path is not None:
                body["Path"] = _check_path(path)
            data = _user_data_string(user_data)
            if data is not None:
                body["UserData"] = data
            if name_rule is not None:
                rule = name_rule if isinstance(name_rule, NameRule) else NameRule.parse(name_rule)
                body["NameRule"] = rule.rule
        kind = room_type or self.room_type
        params = {"AppID": self.app_id, "ArRoomID": room_id, "Type": kind}
        request = prepare_post(
            self.session, f"{self.record_api_url}/{endpoint}", params=params, json_body=body
        )
        return RecordCall(endpoint, room_id, kind, body, request)

    def send_record(self, call: RecordCall) -> RecordResult:
        """Send a prepared start or stop; raise RecordCallFailed unless the vendor says ``ok``."""
        endpoint = call.endpoint
        payload = send_prepared(self.session, call.request, endpoint, timeout_s=self.timeout_s)
        try:
            result = RecordResult.model_validate(payload)
        except ValidationError:
            raise ProtocolError(
                "bad_response", "answer has no string 'result'", endpoint=endpoint
            ) from None
        if not result.ok:
            raise RecordCallFailed(result.result, clip(result.result), endpoint=endpoint)
        return result

    def warm(self, count: int, run: Callable[[Callable[[], None]], Any]) -> int:
        """Open up to ``count`` connections to the record API ahead of a burst of calls, each
        by a job handed to ``run`` (see :class:`~worker.anyrtc.transport.ConnectionWarmer`)."""
        return self._warmer.warm(count, run)

    # -- queries ------------------------------------------------------------------------------

    def list_by_time(
        self, beg_ms: int, end_ms: int, page_num: int = 1, page_max: int = DEFAULT_PAGE_MAX
    ) -> VodPage:
        """One page of files uploaded in ``[beg_ms, end_ms]`` (epoch ms); ``total`` for paging."""
        _check_ms("beg_ms", beg_ms)
        _check_ms("end_ms", end_ms)
        if beg_ms > end_ms:
            raise ValueError("beg_ms must not be after end_ms")
        if not 1 <= page_max <= MAX_PAGE_MAX:
            raise ValueError(f"page_max must be 1..{MAX_PAGE_MAX}")
        if page_num < 1:
            raise ValueError("page_num must be >= 1")
        payload = self._query(
            LIST_BY_TIME,
            {"begTime": beg_ms, "endTime": end_ms, "pageNum": page_num, "pageMax": page_max},
        )
        return self._page(payload, LIST_BY_TIME, page_num=page_num, page_max=page_max)

    def list_by_room(self, room_id: str, beg_ms: int, end_ms: int) -> VodPage:
        """Every file of ``room_id`` uploaded in ``[beg_ms, end_ms]`` (epoch ms)."""
        if not isinstance(room_id, str) or not room_id:
            raise ValueError("room_id must be a non-empty string")
        _check_ms("beg_ms", beg_ms)
        _check_ms("end_ms", end_ms)
        if beg_ms > end_ms:
            raise ValueError("beg_ms must not be after end_ms")
        payload = self._query(
            LIST_BY_ROOM, {"roomId": room_id, "begTime": beg_ms, "endTime": end_ms}
        )
        return self._page(payload, LIST_BY_ROOM)

    @staticmethod
    def _page(payload: dict[str, Any], endpoint: str, **paging: Any) -> VodPage:
        try:
            page = VodPage.from_payload(payload, **paging)
        except (ValidationError, ValueError, TypeError) as exc:
            raise ProtocolError(
                "bad_response", clip(f"unreadable file list: {exc}"), endpoint=endpoint
            ) from None
        if page.invalid:
            log.warning(
                "anyRTC %s: %d unreadable file entr%s skipped: %s",
                endpoint,
                len(page.invalid),
                "y" if len(page.invalid) == 1 else "ies",
                clip(" | ".join(page.invalid)),
            )
        return page

    def _query(self, endpoint: str, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            payload = self._query_attempts(endpoint, fields)
        except AnyRTCError as exc:
            outcome = "retry" if exc.retryable else "fail"
            self.query_gate.on_answer(endpoint, outcome, str(exc.code))
            raise
        self.query_gate.on_answer(endpoint, "ok", "200")
        return payload

    def _query_attempts(self, endpoint: str, fields: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.vod_api_url}/videoInfo/{endpoint}"
        token = self._vod_token.get_secret_value()
        for attempt in (1, 2):
            self.query_gate.before_query(self.app_id, endpoint)
            timestamp = int(self.clock() * 1000)
            random = make_random()
            body = {
                "appId": self.app_id,
                "random": random,
                "signature": sign(self.app_id, timestamp, token, random),
                "timestamp": timestamp,
                **fields,
            }
            try:
                payload = post_json(
                    self.session, url, endpoint, timeout_s=self.timeout_s, json_body=body
                )
            finally:
                # The limiter frees a slot one window after the call *ended*: the latest moment
                # the vendor can have counted it.
                self.query_gate.after_query(self.app_id, endpoint)
            code = self._code(payload, endpoint)
            if code == 200:
                return payload
            message = clip(str(payload.get("message", payload.get("msg", "")) or ""))
            if code == 282 and attempt == 1:
                log.warning("anyRTC %s answered 282 (bad timestamp); retrying once", endpoint)
                continue
            error = error_for_code(code, message, endpoint=endpoint)
            if isinstance(error, RateLimited):
                self.query_gate.on_rate_limited(self.app_id, endpoint)
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _code(payload: dict[str, Any], endpoint: str) -> int:
        code = payload.get("code")
        try:
            if isinstance(code, bool):
                raise TypeError
            return int(code)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ProtocolError(
                "bad_response", f"answer has no integer 'code': {code!r}", endpoint=endpoint
            ) from None
