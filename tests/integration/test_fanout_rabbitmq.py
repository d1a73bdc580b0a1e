"""The downstream exchange on RabbitMQ: a native durable topic exchange, and a message marked
sent only after the broker confirmed it (a nacked publish stays pending for the sweep)."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue

from config.downstream import QueueBinding
from tests.support.run import RUN_ID, TEST_PREFIX
from worker.discovery.fanout import AUDIT_MAX, FanOut, Outbox, Publisher
from worker.discovery.keys import DiscoveryKeys

pytestmark = pytest.mark.integration

EXCHANGE = f"recordings-{RUN_ID}"
BODY = {"schema": "recording.v1", "status": 2, "file_id": "f-1", "room_id": "room-1"}


def _fanout(url: str, client: redis.Redis) -> FanOut:
    publisher = Publisher(url, EXCHANGE, [QueueBinding("customer", ("recording.*",))])
    publisher.declare()
    return FanOut(Outbox(client, DiscoveryKeys(TEST_PREFIX)), publisher)


def _get(conn: Connection, queue: str) -> Any:
    with conn.SimpleQueue(queue, no_ack=True) as simple, contextlib.suppress(socket.timeout):
        return simple.get(timeout=2)
    return None


def test_the_exchange_is_a_native_durable_topic_exchange(
    rabbitmq_url: str, redis_client: redis.Redis
) -> None:
    fanout = _fanout(rabbitmq_url, redis_client)
    try:
        assert fanout.deliver("f-1", BODY, "poll")
    finally:
        fanout.publisher.close()
    with Connection(rabbitmq_url) as conn:
        channel = conn.default_channel
        Exchange(EXCHANGE, "topic", durable=True)(channel).declare()  # the same: accepted
        with pytest.raises(conn.channel_errors, match="inequivalent arg 'type'"):
            Exchange(EXCHANGE, "direct", durable=True)(conn.channel()).declare()
        with pytest.raises(conn.channel_errors, match="inequivalent arg 'durable'"):
            Queue("customer", durable=False)(conn.channel()).declare()
        message = _get(conn, "customer")
        assert message is not None and message.payload["file_id"] == "f-1"
        assert message.properties["delivery_mode"] == 2
        # The audit queue is bounded by RabbitMQ itself: the same arguments are accepted again.
        audit = Queue(f"{EXCHANGE}.audit", durable=True, max_length=AUDIT_MAX)
        audit(conn.channel()).declare()
    assert fanout.outbox.get("f-1")["state"] == "sent"


def test_a_publish_the_broker_refuses_stays_pending_until_it_is_confirmed(
    rabbitmq_url: str, redis_client: redis.Redis
) -> None:
    fanout = _fanout(rabbitmq_url, redis_client)
    full = Queue(
        "full",
        Exchange(EXCHANGE, "topic", durable=True),
        routing_key="recording.*",
        max_length=0,
        queue_arguments={"x-overflow": "reject-publish"},
    )
    try:
        with Connection(rabbitmq_url) as conn:
            full(conn.default_channel).declare()  # a bound queue that refuses every message
            # Claimed and published, but nacked: without confirms this would be marked sent.
            assert fanout.deliver("f-1", BODY, "poll")
            record = fanout.outbox.get("f-1")
            assert record["state"] == "pending"
            assert redis_client.zscore(fanout.outbox.keys.outbox_pending, "f-1") is not None

            full(conn.default_channel).delete()
            time.sleep(0.1)
            assert fanout.republish("f-1")  # what the sweep does after the lease
            assert fanout.outbox.get("f-1")["state"] == "sent"
            assert redis_client.zscore(fanout.outbox.keys.outbox_pending, "f-1") is None
    finally:
        fanout.publisher.close()
