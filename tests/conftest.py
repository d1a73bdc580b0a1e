"""Fixtures shared by every test: one isolated test run on the real Redis and a real simulator.

Isolation: every key this run writes (state, broker, results) starts with ``TEST_PREFIX``, in
database ``TEST_REDIS_DB`` (default 11), and is deleted after each test. The simulator is started
before collection so the environment (and so Settings, the Celery app and subprocess workers)
points at it from the first import on.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

RUN_ID = uuid.uuid4().hex[:8]
TEST_PREFIX = f"test-{RUN_ID}"
TEST_APP_ID = "test-app"
TEST_VOD_TOKEN = f"test-vod-token-{RUN_ID}"  # distinct, so leak tests can search for it
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "11"))
TEST_REDIS_URL = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"

_simulator_cm: Any = None
SIMULATOR: Any = None


def _redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    global _simulator_cm, SIMULATOR
    from worker.simulator import running_simulator

    _simulator_cm = running_simulator(app_id=TEST_APP_ID, vod_token=TEST_VOD_TOKEN, seed=1234)
    SIMULATOR = _simulator_cm.__enter__()
    os.environ.update(
        {
            "ANYRTC_APP_ID": TEST_APP_ID,
            "ANYRTC_VOD_TOKEN": TEST_VOD_TOKEN,
            "ANYRTC_RECORD_API_URL": SIMULATOR.record_api_url,
            "ANYRTC_VOD_API_URL": SIMULATOR.vod_api_url,
            "ANYRTC_HTTP_TIMEOUT_S": "3",
            "REDIS_URL": TEST_REDIS_URL,
            "REDIS_KEY_PREFIX": TEST_PREFIX,
            "DOWNSTREAM_EXCHANGE": f"recordings-{RUN_ID}",
        }
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    from config.settings import get_settings

    get_settings.cache_clear()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _simulator_cm is not None:
        _simulator_cm.__exit__(None, None, None)
    if _redis_available():
        _delete_run_keys(redis.Redis.from_url(TEST_REDIS_URL))


def _delete_run_keys(client: redis.Redis) -> None:
    # Every name this run makes carries RUN_ID: its key prefix, its exchange (and so kombu's
    # binding keys, permanent ones included) and the audit queue bound to that exchange.
    for key in client.scan_iter(match=f"*{RUN_ID}*", count=1000):
        client.delete(key)


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _redis_available():
        if os.environ.get("CI"):
            pytest.fail(f"Redis does not answer at {TEST_REDIS_URL} (CI must start one)")
        pytest.skip(f"Redis does not answer at {TEST_REDIS_URL}")
    return TEST_REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test database; every key of this run is gone after the test."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    _delete_run_keys(client)
    yield client
    _delete_run_keys(client)
    client.close()


@pytest.fixture
def sim() -> Iterator[Any]:
    """The simulator, reset to its defaults (journal, rooms, files, budget, faults) per test."""
    SIMULATOR.reset()
    yield SIMULATOR
    SIMULATOR.reset()


@pytest.fixture
def settings() -> Any:
    from config.settings import get_settings

    return get_settings()
