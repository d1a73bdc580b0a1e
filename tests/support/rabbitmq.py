"""RabbitMQ for the tests that run once per broker: a virtual host of their own, and gone after.

The broker is ``TEST_AMQP_URL`` (default ``amqp://guest:guest@127.0.0.1:5672``). Virtual hosts
are made through the management HTTP API when it answers (``TEST_RABBITMQ_API``, default
``http://127.0.0.1:15672``, the same user), else with ``rabbitmqctl`` on this machine. Every
name carries the run's ``RUN_ID``, so parallel runs on one RabbitMQ never share a queue.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
from urllib.parse import quote, urlsplit

import requests

from tests.support.run import RUN_ID

__all__ = [
    "TEST_AMQP_URL",
    "create_vhost",
    "delete_vhost",
    "new_vhost_name",
    "rabbitmq_available",
    "vhost_url",
]

TEST_AMQP_URL = os.environ.get("TEST_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672"
TEST_RABBITMQ_API = os.environ.get("TEST_RABBITMQ_API") or "http://127.0.0.1:15672"
_serial = itertools.count(1)


def rabbitmq_available() -> bool:
    parts = urlsplit(TEST_AMQP_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 1):
            return True
    except OSError:
        return False


def new_vhost_name() -> str:
    return f"test-{RUN_ID}-{next(_serial)}"


def vhost_url(vhost: str) -> str:
    """``TEST_AMQP_URL`` with ``vhost`` as its path (quoted: kombu unquotes it)."""
    return f"{TEST_AMQP_URL.rstrip('/')}/{quote(vhost, safe='')}"


def create_vhost(vhost: str) -> None:
    """Create ``vhost`` and give the test user every permission on it."""
    user = urlsplit(TEST_AMQP_URL).username or "guest"
    if _api_answers():
        _api("PUT", f"vhosts/{quote(vhost, safe='')}")
        _api("PUT", f"permissions/{quote(vhost, safe='')}/{quote(user, safe='')}", _ALL)
        return
    _ctl("add_vhost", vhost)
    _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def delete_vhost(vhost: str) -> None:
    """Delete ``vhost`` with its exchanges, queues and messages."""
    if _api_answers():
        _api("DELETE", f"vhosts/{quote(vhost, safe='')}")
        return
    _ctl("delete_vhost", vhost)


_ALL = {"configure": ".*", "write": ".*", "read": ".*"}


def _auth() -> tuple[str, str]:
    parts = urlsplit(TEST_AMQP_URL)
    return parts.username or "guest", parts.password or "guest"


def _api_answers() -> bool:
    try:
        return requests.get(f"{TEST_RABBITMQ_API}/api/overview", auth=_auth(), timeout=1).ok
    except requests.RequestException:
        return False


def _api(method: str, path: str, body: dict[str, str] | None = None) -> None:
    reply = requests.request(
        method, f"{TEST_RABBITMQ_API}/api/{path}", auth=_auth(), json=body, timeout=10
    )
    reply.raise_for_status()


def _ctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed: {done.stderr.strip() or done.stdout}")
