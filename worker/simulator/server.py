"""The HTTP face of the simulator: vendor paths, fake downloads and the admin API on loopback."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from worker.simulator.admin import ADMIN_PREFIX, handle_admin
from worker.simulator.callbacks import CallbackSender
from worker.simulator.config import SimulatorConfig
from worker.simulator.journal import redact
from worker.simulator.responses import Outcome, json_outcome, plain_outcome
from worker.simulator.state import SimulatorState

__all__ = ["QUERY_PATHS", "RECORD_PATHS", "SimulatorServer"]

log = logging.getLogger("worker.simulator")

RECORD_PREFIX = "/anyapi/v1"
VOD_PREFIX = "/oauth/anyapi/v1"
RECORD_PATHS = {
    f"{RECORD_PREFIX}/startrecord": "startrecord",
    f"{RECORD_PREFIX}/stoprecord": "stoprecord",
}
QUERY_PATHS = {
    f"{VOD_PREFIX}/videoInfo/getVodListByTime": "getVodListByTime",
    f"{VOD_PREFIX}/videoInfo/getVodInfoByRoomId": "getVodInfoByRoomId",
}
_VOD_FILE = re.compile(r"/vod/([A-Za-z0-9]{1,64})\.mp4")
# Just enough of an MP4 (an ftyp box and an empty free box) for "is it a video?" sniffing.
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom\x00\x00\x00\x08free"
MAX_BODY_BYTES = 1 << 20


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The vendor's front end takes a top-of-the-hour burst of new connections; socketserver's
    # default listen backlog of 5 would drop SYNs (a 1 s retransmit, or a reset) that the vendor
    # would have accepted, so clients would see faults the real service does not have.
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], state: SimulatorState, stopping: threading.Event
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.stopping = stopping
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End idle keep-alive connections, whose daemon threads would otherwise linger."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "anyRTC-simulator/1.0"
    # Headers and body leave in separate writes; with Nagle on, every answer waited for the
    # client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self._deliver(plain_outcome(400, f"{exc}\n"), started, method)
            return
        parts = urlsplit(self.path)
        self._deliver(self._route(method, parts.path, parts.query, body), started, method)

    def _route(self, method: str, path: str, query_text: str, body: bytes) -> Outcome:
        state = self.server.state
        query = parse_qs(query_text, keep_blank_values=True)
        endpoint = RECORD_PATHS.get(path) or QUERY_PATHS.get(path)
        if endpoint is not None and method != "POST":
            return json_outcome({"error": f"{path} accepts POST only"}, 405)
        if path in RECORD_PATHS:
            return state.record_call(RECORD_PATHS[path], query, body, self._client_ip())
        if path in QUERY_PATHS:
            content_type = self.headers.get("Content-Type")
            return state.query_call(QUERY_PATHS[path], body, content_type, self._client_ip())
        if path.startswith(ADMIN_PREFIX):
            return handle_admin(state, method, path, query, body)
        vod = _VOD_FILE.fullmatch(path)
        if vod and method in ("GET", "HEAD") and state.vod_available(vod.group(1)):
            return Outcome(body=FAKE_MP4, content_type="video/mp4")
        return json_outcome({"error": f"not found: {path}"}, 404)

    def _deliver(self, outcome: Outcome, started: float, method: str) -> None:
        if outcome.delay_s > 0:
            # Waits on the stop event so a hanging call does not hold up shutdown.
            self.server.stopping.wait(outcome.delay_s)
        if outcome.entry is not None:
            self.server.state.journal.finish(outcome.entry, time.monotonic() - started)
            log.info(
                "%s %s -> %s (%.3fs)",
                outcome.entry["client_ip"],
                outcome.entry["endpoint"],
                outcome.entry["verdict"],
                outcome.entry["duration_s"],
            )
        else:
            # The path only (admin bodies may carry tokens), scrubbed in case one was put there.
            path = redact(self.path, self.server.state.secrets)
            log.info("%s %s %s -> %d", self._client_ip(), method, path, outcome.status)
        if outcome.drop:
            # No status line at all: the socket closes when this handler returns.
            self.close_connection = True
            return
        try:
            self.send_response(outcome.status)
            self.send_header("Content-Type", _with_charset(outcome.content_type))
            self.send_header("Content-Length", str(len(outcome.body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(outcome.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (typically on a hang fault); nothing left to tell it.
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError as exc:
            raise ValueError("bad Content-Length") from exc
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ValueError("body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError as exc:
                raise ValueError("bad chunked encoding") from exc
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise ValueError("body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _client_ip(self) -> str:
        return str(self.client_address[0])


def _with_charset(content_type: str) -> str:
    if content_type.startswith(("application/json", "text/")):
        return f"{content_type}; charset=utf-8"
    return content_type


class SimulatorServer:
    """The simulator listening on ``host:port`` (port 0 picks a free one), plus its callbacks.

    ``start()`` serves from daemon threads; ``stop()`` (or leaving the ``with`` block) ends
    the server and the callback thread.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        callback_interval_s: float = 0.05,
    ) -> None:
        self.state = SimulatorState(config, clock=clock)
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), self.state, self._stopping)
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self.state.base_url = self.base_url
        self._callbacks = CallbackSender(self.state, callback_interval_s)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port``, with a wildcard bind shown as loopback."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def record_api_url(self) -> str:
        """Base URL of startrecord/stoprecord (the vendor's ``.../anyapi/v1``)."""
        return self.base_url + RECORD_PREFIX

    @property
    def vod_api_url(self) -> str:
        """Base URL of the query endpoints (the vendor's ``.../oauth/anyapi/v1``)."""
        return self.base_url + VOD_PREFIX

    def start(self) -> SimulatorServer:
        """Serve in a daemon thread and start the callback sender; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="anyrtc-sim-http",
                daemon=True,
            )
            self._thread.start()
            self._callbacks.start()
        return self

    def stop(self) -> None:
        """Stop serving, release the port and stop the callback thread."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()
        self._httpd.close_connections()
        self._callbacks.stop()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
