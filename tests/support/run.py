"""This test run's names and the environment every tier runs under (no server needed to set it).

Every key this run writes (state, and through the opt-in ``CELERY_BROKER_KEY_PREFIX`` broker
and results) starts with ``TEST_PREFIX``, in database
``TEST_REDIS_DB`` (default 11) of ``TEST_REDIS_URL``, and every name carries ``RUN_ID``, so
parallel runs on one Redis never meet.
"""

from __future__ import annotations

import os
import uuid

__all__ = [
    "RUN_ID",
    "TEST_APP_ID",
    "TEST_PREFIX",
    "TEST_REDIS_URL",
    "TEST_VOD_TOKEN",
    "UNPREFIXED_REDIS_URL",
    "base_environment",
]

RUN_ID = uuid.uuid4().hex[:8]
TEST_PREFIX = f"test-{RUN_ID}"
TEST_APP_ID = "test-app"
TEST_VOD_TOKEN = f"test-vod-token-{RUN_ID}"  # distinct, so leak tests can search for it
TEST_REDIS_URL = (
    os.environ.get("TEST_REDIS_URL")
    or f"redis://127.0.0.1:6379/{int(os.environ.get('TEST_REDIS_DB', '11'))}"
)
# The one test tier that runs the product at its default (no broker key prefix), for the plain
# Celery client that knows only the URL: a database of its own, so its queues meet no other run's.
UNPREFIXED_REDIS_URL = (
    os.environ.get("TEST_UNPREFIXED_REDIS_URL")
    or f"redis://127.0.0.1:6379/{int(os.environ.get('TEST_UNPREFIXED_REDIS_DB', '12'))}"
)
# Port 9 (discard) refuses connections on loopback: a unit test that reaches for the vendor by
# mistake fails at once instead of calling the real anyRTC (the settings' default URLs).
_NO_VENDOR = "http://127.0.0.1:9"


def base_environment() -> dict[str, str]:
    """What Settings (and so the Celery app) needs, pointing at this run's names only."""
    return {
        "ANYRTC_APP_ID": TEST_APP_ID,
        "ANYRTC_VOD_TOKEN": TEST_VOD_TOKEN,
        "ANYRTC_RECORD_API_URL": f"{_NO_VENDOR}/anyapi/v1",
        "ANYRTC_VOD_API_URL": f"{_NO_VENDOR}/oauth/anyapi/v1",
        "ANYRTC_HTTP_TIMEOUT_S": "3",
        "REDIS_URL": TEST_REDIS_URL,
        "REDIS_KEY_PREFIX": TEST_PREFIX,
        # The product's default is no broker prefix (plain clients must find the queues); test
        # runs opt in so that parallel runs on one database never share a queue.
        "CELERY_BROKER_KEY_PREFIX": f"{TEST_PREFIX}:celery:",
        "DOWNSTREAM_EXCHANGE": f"recordings-{RUN_ID}",
    }
