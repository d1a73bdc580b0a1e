"""The Procfile's ``web`` line, run as written: it serves callbacks and never logs the token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.net import free_port, wait_for_http
from worker.demo.procfile import read_procfile

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CALLBACK = {
    "type": "1",
    "mediaType": "audio/video",
    "userId": "",
    "groupId": "web-room",
    "startTime": "1764050400",
    "endTime": "1764050460",
    "fileName": "web_room_x.mp4",
    "fileSize": 1234,
    "duration": 60,
    "downloadUrl": "http://vod.example/web-room.mp4",
    "userData": "",
}


def test_web_line_serves_callbacks_and_hides_the_token(redis_client: Any, tmp_path: Path) -> None:
    port, token = free_port(), "cb-secret-91x"
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PORT": str(port),
        "WEB_BIND": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "CALLBACK_TOKEN": token,
    }
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["sh", "-c", f"exec {read_procfile()['web']}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", log_path)
        accepted = requests.post(f"{base}/AR/V1/av?token={token}", json=CALLBACK, timeout=5)
        refused = requests.post(f"{base}/AR/V1/av?token=wrong", json=CALLBACK, timeout=5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    assert accepted.status_code == 200 and accepted.json()["code"] == 0
    assert refused.status_code in (401, 403) and refused.json()["code"] != 0
    output = log_path.read_text()
    assert '"POST /AR/V1/av" 200' in output  # the access log is there ...
    assert token not in output  # ... without the query string
