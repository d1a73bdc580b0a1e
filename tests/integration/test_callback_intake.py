"""An acknowledged callback is in Redis before the 2xx and is handled even if its task is lost."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from worker.discovery.service import Discovery
from worker.web.app import CALLBACK_PATH, create_app

pytestmark = pytest.mark.integration

EXAMPLE = json.loads(
    (
        Path(__file__).resolve().parents[1] / "fixtures" / "spec_examples" / "callback.json"
    ).read_text()
)
TOKEN = "intake-token"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _web(settings: Any, sent: list[dict[str, Any]], **update: Any) -> Any:
    tuned = settings.model_copy(update={"callback_token": SecretStr(TOKEN), **update})
    return create_app(tuned, sender=sent.append).test_client()


def test_a_callback_whose_task_is_lost_is_handled_by_the_drain(
    settings: Any, redis_client: redis.Redis
) -> None:
    sent: list[dict[str, Any]] = []
    response = _web(settings, sent).post(f"{CALLBACK_PATH}?token={TOKEN}", json=EXAMPLE)
    assert response.status_code == 200 and len(sent) == 1  # the task is "lost": never run
    clock = Clock(time.time())
    disc = Discovery(settings, lambda *_: None, clock=clock)
    assert disc.intake.count() == 1
    assert disc.drain_intake() == 0  # not yet: its task may still be on its way
    clock.now += disc.intake_grace_s + 1
    assert disc.drain_intake() == 1
    assert disc.intake.count() == 0
    assert disc.ops.stats().get("callback_accepted") == 1
    assert disc.drain_intake() == 0  # handled once


def test_the_task_removes_its_intake_entry(settings: Any, redis_client: redis.Redis) -> None:
    sent: list[dict[str, Any]] = []
    _web(settings, sent).post(f"{CALLBACK_PATH}?token={TOKEN}", json=EXAMPLE)
    disc = Discovery(settings, lambda *_: None)
    assert disc.intake.count() == 1
    disc.callback(sent[0])  # what discovery.callback runs
    assert disc.intake.count() == 0


def test_download_hosts_outside_the_allow_list_are_422(
    settings: Any, redis_client: redis.Redis
) -> None:
    sent: list[dict[str, Any]] = []
    web = _web(settings, sent, callback_url_hosts=".anyrtc.io,vod.example")
    url = f"{CALLBACK_PATH}?token={TOKEN}"
    assert web.post(url, json=EXAMPLE).status_code == 200  # www.anyrtc.io
    other = web.post(url, json={**EXAMPLE, "downloadUrl": "http://evil.example/x.mp4"})
    assert other.status_code == 422 and "CALLBACK_URL_HOSTS" in other.get_json()["message"]
    assert len(sent) == 1
