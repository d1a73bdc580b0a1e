"""Loopback helpers for tests that start HTTP servers as subprocesses."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest
import requests

__all__ = ["free_port", "wait_for_http"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, log_path: Path, timeout_s: float = 30.0) -> None:
    """Return once ``url`` answers 200; fail the test with the server's log if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout_s:.0f}s:\n{log_path.read_text()}")
