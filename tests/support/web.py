"""The Procfile's ``web`` line as a subprocess on loopback, raw requests to it, and the web app
served in the test's own process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from tests.support.net import free_port, wait_for_http
from worker.demo.procfile import read_procfile

__all__ = ["QuietHandler", "raw_request", "serving", "web_env", "web_line"]

ROOT = Path(__file__).resolve().parents[2]


def web_env(port: int, token: str, **extra: str) -> dict[str, str]:
    """This environment for one gunicorn on ``port``; a setting given as "" is left unset."""
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PORT": str(port),
        "WEB_BIND": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "CALLBACK_TOKEN": token,
        **extra,
    }
    return {k: v for k, v in env.items() if v != ""}


@contextmanager
def web_line(log_path: Path, token: str, **extra: str) -> Iterator[str]:
    """The Procfile's web line in its own session; yields its base URL once /healthz answers."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["sh", "-c", f"exec {read_procfile()['web']}"],
            cwd=ROOT, env=web_env(port, token, **extra), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", log_path)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)


def raw_request(base: str, data: bytes) -> bytes:
    """Send ``data`` as it is (no HTTP library would send a broken request line)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(65536)


class QuietHandler(WSGIRequestHandler):
    """No access log: the request line carries the token."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` (WSGI) on a free loopback port in this process; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
