"""What the operator sees of callback silence and waiting booking events: doctor's check and
the /metrics collector, read from the Redis state the discovery workers write."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from schedules.keys import LifecycleKeys
from worker.cli.doctor import OK, WARN, check_callback_silence
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.silence import CallbackSilence
from worker.web.metrics import DeploymentCollector

pytestmark = pytest.mark.integration


def gauges(settings: Any, client: redis.Redis) -> dict[str, float]:
    collector = DeploymentCollector(settings, client, ask=lambda: {})
    return {
        sample.name: sample.value
        for family in collector._state()
        for sample in family.samples
        if not sample.labels
    }


def raise_silence(settings: Any, client: redis.Redis) -> CallbackSilence:
    now = [time.time() - 100]
    silence = CallbackSilence(
        client, DiscoveryKeys(settings.redis_key_prefix), silence_s=30, expected=True,
        clock=lambda: now[0],
    )  # fmt: skip
    silence.file_delivered({}, "poll")
    silence.file_delivered({}, "room")
    now[0] += 31
    assert silence.check()
    return silence


def test_doctor_and_metrics_show_callback_silence_until_a_callback_comes(
    settings: Any, redis_client: redis.Redis
) -> None:
    assert check_callback_silence(settings).status == OK
    assert gauges(settings, redis_client)["anyrtc_callback_silence"] == 0
    silence = raise_silence(settings, redis_client)
    check = check_callback_silence(settings)
    assert check.status == WARN
    assert "while 2 file(s) were found only by polling" in check.detail
    assert "callback URL in the vendor console" in check.detail and "firewall" in check.detail
    assert gauges(settings, redis_client)["anyrtc_callback_silence"] == 1
    off = settings.model_copy(update={"callbacks_expected": "off"})
    assert check_callback_silence(off).status == OK
    assert gauges(off, redis_client)["anyrtc_callback_silence"] == 0
    assert silence.callback_seen()
    assert check_callback_silence(settings).status == OK
    assert gauges(settings, redis_client)["anyrtc_callback_silence"] == 0


def test_metrics_count_booking_events_waiting_and_the_oldest_age(
    settings: Any, redis_client: redis.Redis
) -> None:
    assert gauges(settings, redis_client)["anyrtc_booking_events_pending"] == 0
    assert "anyrtc_booking_events_oldest_seconds" not in gauges(settings, redis_client)
    at = time.time() - 600
    facts = {"message_id": "bk:m:1:1", "at": at, "booking_id": "m", "state": "stopped"}
    redis_client.zadd(LifecycleKeys(settings.redis_key_prefix).outbox, {json.dumps(facts): 1})
    seen = gauges(settings, redis_client)
    assert seen["anyrtc_booking_events_pending"] == 1
    assert seen["anyrtc_booking_events_oldest_seconds"] == pytest.approx(600, abs=5)
