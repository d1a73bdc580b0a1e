"""Celery's keys at defaults: what a booking system's plain client (URL only) expects."""

from __future__ import annotations

import pytest

from config.celery import DEFAULT_QUEUE, LIFECYCLE_QUEUE, celery_config
from config.settings import load_settings


def test_broker_and_result_keys_are_unprefixed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_KEY_PREFIX", raising=False)
    config = celery_config(load_settings())
    assert "global_keyprefix" not in config["broker_transport_options"]
    assert "global_keyprefix" not in config["result_backend_transport_options"]


def test_the_prefix_is_an_explicit_opt_in_for_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_KEY_PREFIX", "site-a:")
    config = celery_config(load_settings())
    assert config["broker_transport_options"]["global_keyprefix"] == "site-a:"
    assert config["result_backend_transport_options"]["global_keyprefix"] == "site-a:"


def test_celerys_default_queue_is_declared_beside_lifecycle() -> None:
    config = celery_config(load_settings())
    queues = {queue.name: queue for queue in config["task_queues"]}
    assert {LIFECYCLE_QUEUE, DEFAULT_QUEUE} <= set(queues)
    # What an unconfigured Celery client publishes to: exchange and routing key "celery".
    assert queues[DEFAULT_QUEUE].exchange.name == queues[DEFAULT_QUEUE].routing_key == "celery"


def test_rabbitmq_as_broker_gets_confirms_and_no_redis_only_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://user:pw@rabbit:5672/recorder")
    monkeypatch.setenv("CELERY_BROKER_KEY_PREFIX", "site-a:")
    config = celery_config(load_settings())
    assert config["broker_url"].startswith("amqp://")
    assert config["broker_transport_options"] == {"confirm_publish": True}
    # Results stay in Redis, with the Redis options.
    assert config["result_backend"].startswith("redis://")
    assert config["result_backend_transport_options"]["global_keyprefix"] == "site-a:"
    assert "visibility_timeout" in config["result_backend_transport_options"]


def test_redis_as_broker_keeps_its_visibility_timeout_and_no_confirms() -> None:
    options = celery_config(load_settings())["broker_transport_options"]
    assert options["visibility_timeout"] > 0
    assert "confirm_publish" not in options


def test_every_queue_and_its_exchange_is_durable() -> None:
    for queue in celery_config(load_settings())["task_queues"]:
        assert queue.durable and queue.exchange.durable, queue.name
        assert queue.exchange.name == queue.routing_key == queue.name
