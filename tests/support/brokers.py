"""The broker a test runs on: Redis (the default) or RabbitMQ (a virtual host of its own).

A :class:`Broker` gives the worker subprocesses their environment (``CELERY_BROKER_URL`` and
``DOWNSTREAM_URL``), the test its Settings and a Celery app that sends to that broker; state,
leases and results stay in the run's Redis either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from celery import Celery

from config.celery import celery_config
from config.settings import Settings

__all__ = ["Broker"]


@dataclass(frozen=True)
class Broker:
    name: str
    url: str
    downstream_url: str

    @property
    def env(self) -> dict[str, str]:
        return {"CELERY_BROKER_URL": self.url, "DOWNSTREAM_URL": self.downstream_url}

    def serves(self, worker_log: str) -> bool:
        """Whether a worker's log shows it connected to this broker (not to some default)."""
        scheme = "amqp" if self.name == "rabbitmq" else "redis"
        return f"Connected to {scheme}://" in worker_log

    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"celery_broker_url": self.url, "downstream_url": self.downstream_url}
        )

    @contextmanager
    def app(self, settings: Settings) -> Iterator[Celery]:
        """A Celery app configured as the product's, on this broker (for ``send_task``)."""
        app = Celery(f"test-{self.name}", set_as_current=False)
        app.config_from_object(celery_config(self.settings(settings)))
        try:
            yield app
        finally:
            app.close()
