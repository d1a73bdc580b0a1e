"""One vendor HTTP call: a POST with a JSON body, every transport failure mapped to our errors.

The vendor's own answer codes are the client's business; this module only guarantees a JSON
object back or an :class:`~worker.errors.AnyRTCError` that says what went wrong on the way.

A call can be built ahead of its moment (:func:`prepare_post`, then :func:`send_prepared`) and
the session's pool can be filled with open connections ahead (:class:`ConnectionWarmer`): at the
top of the hour a herd of starts then costs the worker only the send and the answer, not URL
encoding, JSON, TCP or TLS set-up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from worker.errors import (
    BadRequest,
    ProtocolError,
    VendorHTTPError,
    VendorTimeout,
    VendorUnreachable,
)

__all__ = [
    "DEFAULT_POOL_SIZE",
    "ConnectionWarmer",
    "clip",
    "mount_pool",
    "new_session",
    "post_json",
    "prepare_post",
    "send_prepared",
]

log = logging.getLogger(__name__)

_MESSAGE_LIMIT = 300
# Connections kept per vendor host when the caller does not size the pool (a lifecycle worker
# sizes it to its threads: schedules/dispatch_step.py).
DEFAULT_POOL_SIZE = 64


def clip(text: str) -> str:
    """``text`` on one line and at most 300 characters: vendor text goes into logs and errors."""
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def new_session(pool_size: int = DEFAULT_POOL_SIZE) -> requests.Session:
    """A pooled session that never retries on its own (retries are the callers' decision),
    keeping up to ``pool_size`` open connections per host (one per thread that may call)."""
    session = requests.Session()
    # No proxy/netrc look-ups from the environment on every call: they cost CPU in a burst,
    # and vendor calls must go where the settings say.
    session.trust_env = False
    mount_pool(session, pool_size)
    return session


def mount_pool(session: requests.Session, pool_size: int) -> None:
    """Give ``session`` a fresh connection pool of ``pool_size`` per host (more threads than
    that calling at once would open throw-away connections)."""
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)


def prepare_post(
    session: requests.Session,
    url: str,
    *,
    params: dict[str, str] | None = None,
    json_body: dict[str, Any] | None = None,
) -> requests.PreparedRequest:
    """The POST of ``json_body`` (``{}`` if None) to ``url``, encoded and ready to send (any
    number of times) with :func:`send_prepared`."""
    request = requests.Request(
        "POST", url, params=params, json=json_body if json_body is not None else {}
    )
    return session.prepare_request(request)


def post_json(
    session: requests.Session,
    url: str,
    endpoint: str,
    *,
    timeout_s: float,
    params: dict[str, str] | None = None,
    json_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST ``json_body`` (``{}`` if None) and return the answer's JSON object."""
    prepared = prepare_post(session, url, params=params, json_body=json_body)
    return send_prepared(session, prepared, endpoint, timeout_s=timeout_s)


def send_prepared(
    session: requests.Session,
    prepared: requests.PreparedRequest,
    endpoint: str,
    *,
    timeout_s: float,
) -> dict[str, Any]:
    """Send a request built by :func:`prepare_post`; return the answer's JSON object."""
    started = time.monotonic()
    try:
        # The session's own environment is off (trust_env), so send() is what post() would do
        # after building the request.
        response = session.send(prepared, timeout=(timeout_s, timeout_s))
    except requests.ConnectTimeout:
        raise VendorUnreachable(
            "connect_timeout", f"no connection within {timeout_s}s", endpoint=endpoint
        ) from None
    except requests.Timeout:
        raise VendorTimeout(
            "timeout", f"no answer within {timeout_s}s", endpoint=endpoint
        ) from None
    except requests.ConnectionError as exc:
        raise VendorUnreachable(
            "connection",
            clip(type(exc).__name__ + ": connection failed or dropped"),
            endpoint=endpoint,
        ) from None
    except requests.RequestException as exc:
        raise VendorUnreachable("transport", clip(type(exc).__name__), endpoint=endpoint) from None
    elapsed = time.monotonic() - started
    log.debug("anyRTC %s -> HTTP %s in %.3fs", endpoint, response.status_code, elapsed)
    status = response.status_code
    if status >= 500:
        raise VendorHTTPError(
            status, f"HTTP {status} {response.reason or ''}".strip(), endpoint=endpoint
        )
    if status >= 400:
        raise BadRequest(
            status, f"HTTP {status} {response.reason or ''}".strip(), endpoint=endpoint
        )
    try:
        payload = response.json()
    except ValueError:
        raise ProtocolError(
            "bad_response", f"HTTP {status} answer is not JSON", endpoint=endpoint
        ) from None
    if not isinstance(payload, dict):
        raise ProtocolError("bad_response", "answer is not a JSON object", endpoint=endpoint)
    return payload


class ConnectionWarmer:
    """Opens connections to one vendor URL's host ahead of a burst, into the session's pool.

    :meth:`warm` makes sure ``count`` (at most the pool's size) idle connections are open, or
    being opened; each missing one is opened by a job handed to ``run`` (a thread pool's
    ``submit``), so a slow TCP or TLS set-up to a distant vendor does not hold the caller, and
    jobs queued on the same pool after them find the connections ready. A connection the vendor
    closed meanwhile is noticed by urllib3 when it is taken, and opened again then.
    """

    def __init__(self, session: requests.Session, url: str, timeout_s: float) -> None:
        self.session = session
        self.url = url
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._opening = 0

    def _pool(self) -> Any:
        # The pool requests itself picks for a call to this URL (same TLS settings, same key).
        request = requests.Request("POST", self.url).prepare()
        adapter = self.session.get_adapter(self.url)
        return adapter.get_connection_with_tls_context(
            request, verify=self.session.verify, cert=self.session.cert
        )

    def idle_open(self) -> int:
        """Connections waiting in the pool with their socket open."""
        queue = self._pool().pool
        with queue.mutex:
            return sum(1 for c in queue.queue if c is not None and c.sock is not None)

    def warm(self, count: int, run: Callable[[Callable[[], None]], Any]) -> int:
        """Start opening connections until ``count`` (at most the pool's size) are open or
        opening; returns how many jobs were handed to ``run``."""
        pool = self._pool()
        with self._lock:
            target = min(count, pool.pool.maxsize) - self._opening
            # Take them all out at once: the pool is LIFO, so taking one at a time would hand
            # back the same open connection again and again.
            taken = [pool._get_conn() for _ in range(max(target, 0))]
            fresh = [conn for conn in taken if conn.sock is None]
            for conn in taken:
                if conn.sock is not None:
                    pool._put_conn(conn)
            self._opening += len(fresh)
        for conn in fresh:
            run(lambda conn=conn: self._open(pool, conn))
        return len(fresh)

    def _open(self, pool: Any, conn: Any) -> None:
        try:
            conn.timeout = self.timeout_s
            conn.connect()
        except OSError as exc:
            # Not fatal: the call itself connects (and maps the failure) as without warming.
            log.debug("warming a vendor connection failed: %s", type(exc).__name__)
            conn.close()
        finally:
            pool._put_conn(conn)
            with self._lock:
                self._opening -= 1
