"""Fan-out: the outbox that makes each file's message exactly one, and the kombu publisher.

Delivery is claim -> publish -> mark sent. The claim (one Lua script) writes the message into
``outbox:<fid>`` as ``pending`` only if no record exists, so of all the sources and retries that
reach a final file only one publishes. A process that dies after claiming leaves the record
pending; the sweep publishes it again after the lease, with the same message id. A message can
therefore (rarely) arrive twice, never with two different ids, and never not at all.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import redis
from kombu import Connection, Exchange, Queue, binding
from kombu.pools import producers

from config.celery import is_amqp_url, is_redis_url
from config.downstream import QueueBinding, audit_binding, parse_downstream_queues
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.message import routing_key
from worker.discovery.room_files import note_delivered
from worker.errors import PublishFailed
from worker.metrics.recorder import Metrics
from worker.redis import redis_from_url, scripts_for

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["AUDIT_MAX", "FILE_SOURCES", "FanOut", "Outbox", "Publisher"]

log = logging.getLogger(__name__)

OUTBOX_TTL_S = 30 * 24 * 3600
#: How long a claimer has to publish before the sweep publishes the message again.
PUBLISH_LEASE_S = 30.0
#: Sources of file messages (``recording.v1``); others (``missing``) are not counted as files.
FILE_SOURCES = ("callback", "poll", "room")
#: The audit queue keeps the newest messages only (nobody consumes it).
AUDIT_MAX = 10_000
_RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}
#: How long a publish waits for RabbitMQ's confirm before it counts as failed (and is retried
#: by the sweep): a broker that neither acks nor nacks must not hold a worker thread forever.
CONFIRM_TIMEOUT_S = 10.0


class Outbox:
    """The per-file outbox records and the schedule of unconfirmed ones.

    ``clock`` (epoch seconds) stamps claims and leases; every process that sweeps the same
    outbox should keep its host clock in sync (NTP): a clock ahead re-publishes early.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        *,
        lease_s: float = PUBLISH_LEASE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.lease_ms = int(lease_s * 1000)
        self.clock = clock
        self._claim = scripts_for(client, "worker.discovery.lua").claim
        self._lease = scripts_for(client, "worker.discovery.lua").lease_due

    def claim(self, fid: str, body: str, routing_key: str, source: str) -> bool:
        """Whether this caller won the file's one message (then it must publish it)."""
        won, _ = self._claim(
            keys=[self.keys.outbox(fid), self.keys.outbox_pending],
            args=[self._now_ms(), fid, body, routing_key, source, self.lease_ms, OUTBOX_TTL_S],
        )
        return bool(int(won))

    def mark_sent(self, fid: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.outbox(fid), mapping={"state": "sent", "sent_ms": self._now_ms()})
        pipe.zrem(self.keys.outbox_pending, fid)
        pipe.execute()

    def get(self, fid: str) -> dict[str, str]:
        return dict(self.client.hgetall(self.keys.outbox(fid)))

    def due(self, limit: int = 100) -> list[str]:
        """Pending messages whose lease ran out, leased again to the caller."""
        due = self._lease(
            keys=[self.keys.outbox_pending], args=[self._now_ms(), self.lease_ms, limit]
        )
        return [str(m) for m in due]

    def forget_pending(self, fid: str) -> None:
        self.client.zrem(self.keys.outbox_pending, fid)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


class Publisher:
    """Publishes ``recording.v1`` messages to the downstream topic exchange (kombu).

    Every publish declares the exchange and the bound queues on its channel first (kombu caches
    this per connection): a kombu Redis "exchange" only exists in the publishing process, and a
    message that matches no binding is dropped.

    On RabbitMQ (``amqp://``) the exchange is a native durable topic exchange, every publish
    waits for the broker's confirm (a nack or no confirm raises, so the outbox keeps the message
    pending), and the audit queue keeps its newest ``AUDIT_MAX`` messages by itself.
    """

    def __init__(
        self, url: str, exchange: str, queues: list[QueueBinding], *, audit: bool = True
    ) -> None:
        self.url = url
        self.exchange = Exchange(exchange, type="topic", durable=True, delivery_mode="persistent")
        amqp = is_amqp_url(url)
        self.audit_queue = audit_binding(exchange).queue if audit else None
        wanted = [*queues, audit_binding(exchange)] if audit else list(queues)
        self.queues = [
            Queue(
                b.queue,
                exchange=self.exchange,
                bindings=[binding(self.exchange, routing_key=p) for p in b.patterns],
                durable=True,
                # RabbitMQ drops the audit queue's oldest messages itself (x-max-length).
                max_length=AUDIT_MAX if amqp and b.queue == self.audit_queue else None,
            )
            for b in wanted
        ]
        self.connection = Connection(
            url,
            connect_timeout=5,
            transport_options={"confirm_publish": True} if amqp else {},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Publisher:
        return cls(
            settings.downstream_broker_url,
            settings.downstream_exchange,
            parse_downstream_queues(settings.downstream_queues),
        )

    def declare(self) -> None:
        """Declare the exchange and bind every queue now (idempotent).

        Uses a fresh connection: kombu remembers bindings per connection and would skip a
        re-declare, so a binding table lost in Redis (flush, restart without persistence) would
        stay lost. The sweep calls this every run, which heals that within one poll interval.
        """
        try:
            with Connection(self.url, connect_timeout=5) as connection:
                channel = connection.default_channel
                self.exchange(channel).declare()
                for queue in self.queues:
                    queue(channel).declare()
        except Exception as exc:
            raise PublishFailed(
                f"cannot declare the downstream exchange: {type(exc).__name__}"
            ) from exc

    def publish(self, body: Mapping[str, Any], routing_key: str, message_id: str) -> None:
        """Publish one persistent JSON message; PublishFailed after the bounded retries."""
        try:
            with producers[self.connection].acquire(block=True, timeout=10) as producer:
                producer.publish(
                    dict(body),
                    exchange=self.exchange,
                    routing_key=routing_key,
                    serializer="json",
                    delivery_mode="persistent",
                    declare=[self.exchange, *self.queues],
                    retry=True,
                    retry_policy=_RETRY_POLICY,
                    message_id=message_id,
                    confirm_timeout=CONFIRM_TIMEOUT_S,
                    headers={"schema": body.get("schema"), "message_id": message_id},
                )
        except Exception as exc:
            raise PublishFailed(
                f"publishing {message_id} to {self.exchange.name!r} failed: {type(exc).__name__}"
            ) from exc

    def trim_audit(self, keep: int = AUDIT_MAX) -> None:
        """Keep the newest ``keep`` messages of the audit queue (Redis transport only: RabbitMQ
        bounds it by its x-max-length)."""
        if self.audit_queue is None or not is_redis_url(self.url):
            return
        client = redis_from_url(self.url)
        try:
            # kombu's Redis transport LPUSHes onto a list named after the queue: newest first.
            client.ltrim(self.audit_queue, 0, keep - 1)
        finally:
            client.close()

    def close(self) -> None:
        self.connection.release()


class FanOut:
    """Claim, publish, confirm: the one path every message takes."""

    def __init__(self, outbox: Outbox, publisher: Publisher) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.metrics = Metrics(outbox.client, outbox.keys.prefix)
        #: Called with (body, source) for each file message this process won (callback silence).
        self.on_file: list[Callable[[Mapping[str, Any], str], None]] = []

    def deliver(self, fid: str, body: Mapping[str, Any], source: str) -> bool:
        """Publish the file's message unless some source already did; True if this call won."""
        # Before the claim: whichever source wins, the room's session then knows its file.
        note_delivered(self.outbox.client, self.outbox.keys, body)
        won = self.deliver_as(fid, body, routing_key(int(body["status"])), source)
        if won:
            for listener in self.on_file:
                try:
                    listener(body, source)
                except redis.RedisError as exc:
                    # Bookkeeping: the message is claimed and goes out whatever happens here.
                    log.warning("file %s: a delivery listener failed: %s", fid, exc)
        return won

    def deliver_as(self, mid: str, body: Mapping[str, Any], routing: str, source: str) -> bool:
        """Publish message ``mid`` on ``routing`` unless it was claimed before; True if this
        call won (then it is published now, or by the resume loop after its lease)."""
        if not self.outbox.claim(mid, json.dumps(body, ensure_ascii=False), routing, source):
            return False
        try:
            self._publish(mid, body, routing, source)
        except PublishFailed:
            # Claimed but unconfirmed: the resume loop publishes it again once the lease runs out.
            log.exception("message %s not published yet; the outbox sweep will retry it", mid)
        return True

    def republish(self, fid: str) -> bool:
        """Publish a claimed-but-unconfirmed message again (same id); False if nothing to do."""
        record = self.outbox.get(fid)
        if record.get("state") != "pending":
            self.outbox.forget_pending(fid)
            return False
        body = json.loads(record["body"])
        self._publish(fid, body, record["routing_key"], record.get("source", ""))
        return True

    def _publish(self, fid: str, body: Mapping[str, Any], routing: str, source: str) -> None:
        self.publisher.publish(body, routing, fid)
        self.outbox.mark_sent(fid)
        if source in FILE_SOURCES:
            self.metrics.delivered(source, body, self.outbox.clock())
