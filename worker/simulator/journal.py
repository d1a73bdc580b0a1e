"""The simulator's journal: every vendor call and callback attempt, tokens scrubbed."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["MAX_ENTRIES", "Journal", "max_in_window", "query_secrets", "redact"]

MAX_ENTRIES = 50_000
MASK = "***"


def max_in_window(times: list[float], window: float) -> int:
    """The most events inside any half-open window ``[t, t + window)`` (e.g. journal arrivals)."""
    times = sorted(times)
    best = j = 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


def query_secrets(url: str | None) -> set[str]:
    """The query values of ``url``, decoded and as written: a callback URL carries the
    receiver's token there (``?token=...``), which the journal and admin API must not show."""
    if not url:
        return set()
    query = urlsplit(url).query
    written = {part.partition("=")[2] for part in query.split("&")}
    decoded = {value for _, value in parse_qsl(query, keep_blank_values=True)}
    return {value for value in written | decoded if value}


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """A copy of JSON-like ``value`` with every occurrence of a secret replaced by ``***``."""
    secret_list = [s for s in secrets if s]
    return _redact(value, secret_list)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {_redact(str(k), secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, secrets) for v in value]
    return value


class Journal:
    """Append-only, thread-safe list of entries with increasing ``seq`` (kept across clears).

    ``seq`` keeps counting after :meth:`clear` so a poller using ``since=last_seq`` never
    mistakes new entries for old ones.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._seq = 0

    def add(
        self,
        *,
        time: float,
        endpoint: str,
        client_ip: str | None,
        params: Any,
        verdict: str,
        secrets: Iterable[str] = (),
        code: int | None = None,
        result: str | None = None,
        http_status: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Append an entry (``params`` scrubbed of ``secrets``) and return it for completion."""
        entry: dict[str, Any] = {
            "seq": 0,
            "time": time,
            "endpoint": endpoint,
            "client_ip": client_ip,
            "params": redact(params, secrets),
            "verdict": redact(verdict, secrets),
            "code": code,
            "result": result,
            "http_status": http_status,
            "duration_s": None,
        }
        entry.update(redact(extra, secrets))
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)
            if len(self._entries) > MAX_ENTRIES:
                del self._entries[: len(self._entries) - MAX_ENTRIES]
        return entry

    def finish(self, entry: dict[str, Any], duration_s: float) -> None:
        """Record how long the call took (set just before the answer leaves)."""
        with self._lock:
            entry["duration_s"] = round(duration_s, 6)

    def entries(
        self, since: int | None = None, endpoint: str | None = None
    ) -> list[dict[str, Any]]:
        """Copies of the entries with ``seq > since`` (and of ``endpoint`` if given)."""
        return self.snapshot(since, endpoint)[0]

    def snapshot(
        self, since: int | None = None, endpoint: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """:meth:`entries` and :attr:`last_seq` read together, so polling with
        ``since=last_seq`` neither skips nor repeats an entry."""
        with self._lock:
            chosen = [
                copy.deepcopy(e)
                for e in self._entries
                if (since is None or e["seq"] > since)
                and (endpoint is None or e["endpoint"] == endpoint)
            ]
            return chosen, self._seq

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest entry ever added (0 if none)."""
        with self._lock:
            return self._seq

    def clear(self) -> None:
        """Drop every entry; ``seq`` keeps counting."""
        with self._lock:
            self._entries.clear()
