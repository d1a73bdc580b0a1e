"""The integration tier: a real simulator and an isolated slice of the real Redis.

pytest imports this file when it collects tests/integration, before any of its test modules,
so the simulator runs and the environment (and so Settings, the Celery app and subprocess
workers) points at it from their first import on. A run of tests/unit never starts either.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest
import redis

from config.settings import Settings
from tests.support.brokers import Broker
from tests.support.net import blackhole_redis_url
from tests.support.rabbitmq import (
    TEST_AMQP_URL,
    create_vhost,
    delete_vhost,
    new_vhost_name,
    rabbitmq_available,
    vhost_url,
)
from tests.support.run import RUN_ID, TEST_APP_ID, TEST_REDIS_URL, TEST_VOD_TOKEN
from worker.simulator import SimulatorHandle, running_simulator

_simulator_cm: AbstractContextManager[SimulatorHandle] | None = None
_simulator: SimulatorHandle | None = None


def _redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    global _simulator_cm, _simulator
    _simulator_cm = running_simulator(app_id=TEST_APP_ID, vod_token=TEST_VOD_TOKEN, seed=1234)
    _simulator = _simulator_cm.__enter__()
    os.environ.update(
        {
            "ANYRTC_RECORD_API_URL": _simulator.record_api_url,
            "ANYRTC_VOD_API_URL": _simulator.vod_api_url,
        }
    )
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
def rabbitmq_url() -> Iterator[str]:
    """An AMQP URL on a RabbitMQ virtual host made for the test and deleted after it."""
    if not rabbitmq_available():
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ does not answer at {TEST_AMQP_URL} (CI must start one)")
        pytest.skip(f"RabbitMQ does not answer at {TEST_AMQP_URL}")
    vhost = new_vhost_name()
    create_vhost(vhost)
    try:
        yield vhost_url(vhost)
    finally:
        delete_vhost(vhost)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, redis_url: str, settings: Settings) -> Broker:
    """Each end-to-end test runs twice: on Redis, then with RabbitMQ as the Celery broker and
    the downstream exchange (state, leases and results stay in Redis)."""
    if request.param == "redis":
        return Broker("redis", settings.broker_url, settings.downstream_broker_url)
    url = request.getfixturevalue("rabbitmq_url")
    return Broker("rabbitmq", url, url)


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A Redis URL whose server accepts connections and never answers: a publish hangs."""
    with blackhole_redis_url() as url:
        yield url


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    """The simulator, reset to its defaults (journal, rooms, files, budget, faults) per test."""
    assert _simulator is not None, "pytest_configure starts the simulator"
    _simulator.reset()
    yield _simulator
    _simulator.reset()


@pytest.fixture
def settings() -> Settings:
    from config.settings import get_settings

    return get_settings()


#: A simulator that answers at once and injects no fault.
QUIET = {
    "latency_s": 0.0,
    "jitter_s": 0.0,
    "error_rate": 0.0,
    "http_error_rate": 0.0,
    "timeout_rate": 0.0,
    "drop_rate": 0.0,
}


@pytest.fixture
def vendor(sim: SimulatorHandle) -> Iterator[SimulatorHandle]:
    """The simulator, quiet (see :data:`QUIET`), before and after the test."""
    sim.reset(**QUIET)
    yield sim
    sim.reset(**QUIET)
