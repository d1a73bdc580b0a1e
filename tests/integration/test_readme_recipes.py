"""The README's two consumer recipes, copied from README.md and run as their own processes
against a real product worker that publishes a real file message: each receives it once, acks
it, and leaves nothing in its queue. Broker, exchange and queue reach them through the
environment variables the recipes read."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.callbacks import callback_body
from tests.support.readme import README, fenced_blocks, named_python_block
from tests.support.waiting import wait_until
from tests.support.workers import running_worker
from worker.discovery.keys import file_key_id

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _worker_command() -> list[str]:
    """The README's command that starts the ConsumerStep worker, run by this interpreter."""
    (line,) = [
        line
        for block in fenced_blocks(README.read_text(), "bash")
        for line in block.splitlines()
        if line.startswith("celery -A archive_worker ")
    ]
    return [sys.executable, "-m", *shlex.split(line)]


class Recipe:
    """One recipe process with its output in a file (a full pipe would stall it)."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.output = cwd / "output.log"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def product_worker(settings: Any, sim: Any) -> Iterator[None]:
    """A discovery worker of the product, consuming the queue callbacks are handled on."""
    sim.configure(upload_delay_s=0.1, transcode_delay_s=0.2)
    with running_worker(queues=("events",), concurrency=2):
        yield


def _bound(client: redis.Redis, exchange: str, queue: str) -> bool:
    table = client.smembers(f"_kombu.binding.{exchange}")
    return sum(1 for entry in table if entry.endswith(f"\x06\x16{queue}")) == 2


@pytest.mark.parametrize("recipe", ["archive_consumer.py", "archive_worker.py"])
def test_a_readme_recipe_receives_a_real_file_message_once_and_acks_it(
    recipe: str,
    settings: Any,
    sim: Any,
    redis_client: redis.Redis,
    product_worker: None,
    tmp_path: Path,
) -> None:
    from worker.celery import app as celery_app

    (tmp_path / recipe).write_text(named_python_block(recipe))
    queue = f"{settings.redis_key_prefix}-recipe"
    exchange = settings.downstream_exchange
    env = {
        **os.environ,
        "DOWNSTREAM_URL": settings.downstream_broker_url,
        "DOWNSTREAM_EXCHANGE": exchange,
        "RECORDINGS_QUEUE": queue,
        "PYTHONPATH": str(tmp_path),
    }
    command = [sys.executable, recipe] if recipe == "archive_consumer.py" else _worker_command()
    consumer = Recipe(command, tmp_path, env)
    try:
        # The recipe declares its queue and both bindings itself, before anything is published.
        wait_until(lambda: _bound(redis_client, exchange, queue), 30.0)
        now = time.time()
        sim.record("room-recipe", now - 20, now - 10)
        (file,) = wait_until(lambda: [f for f in sim.files() if f["status"] == 2] or None)
        celery_app.send_task("discovery.callback", args=[callback_body(file)])
        message_id = file_key_id(file["download_url"])
        wait_until(lambda: message_id in consumer.text(), 30.0)
        time.sleep(0.5)  # a second delivery would show by now
        out = consumer.text()
        assert out.count(message_id) == 1, out
        assert f"recording.v1 {message_id} {file['download_url']}" in out
        assert "unknown message" not in out and "Traceback" not in out, out
        assert redis_client.llen(queue) == 0  # taken, and acked: not waiting to come back
        unacked = redis_client.hvals("unacked")
        assert not any(message_id in entry for entry in unacked)
    finally:
        consumer.stop()
        redis_client.delete(queue, f"{queue}.tasks")
