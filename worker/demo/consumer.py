"""A downstream consumer, as a customer would write it: a queue bound to the topic exchange."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from kombu import Connection, Exchange, Queue

__all__ = ["DownstreamConsumer"]


class DownstreamConsumer:
    """Consumes ``recording.*`` from ``exchange`` in a thread; calls ``on_message(body, key)``."""

    def __init__(
        self,
        url: str,
        exchange: str,
        queue: str,
        on_message: Callable[[dict[str, Any], str], None],
    ) -> None:
        self.url = url
        self.exchange = Exchange(exchange, type="topic", durable=True)
        self.queue = Queue(queue, self.exchange, routing_key="recording.*", durable=True)
        self.on_message = on_message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="downstream-consumer", daemon=True)

    def declare(self) -> None:
        """Bind before anything is published: a queue bound later misses earlier messages."""
        with Connection(self.url) as connection:
            self.queue.bind(connection.default_channel).declare()

    def start(self) -> None:
        self.declare()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def delete(self) -> None:
        with Connection(self.url) as connection:
            self.queue.bind(connection.default_channel).delete()

    def _handle(self, body: Any, message: Any) -> None:
        payload = body if isinstance(body, dict) else json.loads(body)
        self.on_message(payload, message.delivery_info.get("routing_key", ""))
        message.ack()

    def _run(self) -> None:
        with (
            Connection(self.url) as connection,
            connection.Consumer([self.queue], callbacks=[self._handle], accept=["json"]),
        ):
            while not self._stop.is_set():
                try:
                    connection.drain_events(timeout=0.5)
                except TimeoutError:
                    continue
