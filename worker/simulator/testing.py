"""Start a simulator from Python (tests, notebooks, demos): ``with running_simulator() as sim``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from worker.simulator.config import (
    DEFAULT_APP_ID,
    DEFAULT_VOD_TOKEN,
    apply_updates,
    build_config,
)
from worker.simulator.server import SimulatorServer
from worker.simulator.state import SimulatorState

__all__ = ["SimulatorHandle", "running_simulator"]


class SimulatorHandle:
    """A running simulator: its URLs, its credentials and direct access to its state."""

    def __init__(self, server: SimulatorServer, app_id: str, vod_token: str) -> None:
        self.server = server
        self.app_id = app_id
        self.vod_token = vod_token

    @property
    def simulator(self) -> SimulatorState:
        """The state object behind the server (same process, no HTTP needed)."""
        return self.server.state

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.server.base_url

    @property
    def record_api_url(self) -> str:
        """What the client uses as the record base (``.../anyapi/v1``)."""
        return self.server.record_api_url

    @property
    def vod_api_url(self) -> str:
        """What the client uses as the VOD base (``.../oauth/anyapi/v1``)."""
        return self.server.vod_api_url

    def journal(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Journal entries so far, optionally of one endpoint (``callback`` included)."""
        return self.simulator.journal.entries(endpoint=endpoint)

    def reset(self, **config: Any) -> None:
        """Clear rooms, files, journal, budget and callbacks; restore the start config, then
        apply ``config``."""
        self.simulator.reset(config)

    def configure(self, **config: Any) -> dict[str, Any]:
        """Change config at runtime (same fields as ``POST /_admin/config``)."""
        return self.simulator.configure(config)

    def files(self) -> list[dict[str, Any]]:
        """Every file with its current status (as ``GET /_admin/files``)."""
        return self.simulator.files()

    def rooms(self) -> list[dict[str, Any]]:
        """Rooms being recorded (as ``GET /_admin/rooms``)."""
        return self.simulator.rooms()

    def record(self, room_id: str, start: float, end: float, **kwargs: Any) -> list[dict[str, Any]]:
        """Files of an automatically recorded meeting (as ``POST /_admin/record``)."""
        return self.simulator.record_meeting(room_id, start, end, **kwargs)


@contextmanager
def running_simulator(
    *,
    app_id: str = DEFAULT_APP_ID,
    vod_token: str = DEFAULT_VOD_TOKEN,
    clock: Callable[[], float] = time.time,
    **config_overrides: Any,
) -> Iterator[SimulatorHandle]:
    """A simulator on 127.0.0.1 (free port) for the ``with`` block; stopped on exit.

    ``app_id``/``vod_token`` name the app the handle reports; any other keyword is a config
    field (``rate_limit=2``, ``upload_delay_s=0.05``, ``error_rate=1.0``...). The environment
    is not read, so a developer's real token never ends up in a test simulator.
    """
    overrides = dict(config_overrides)
    apps = {app_id: vod_token, **overrides.pop("apps", {})}
    # Replace (not merge) the default app, so the handle's app is the only one.
    config = apply_updates(replace(build_config(**overrides), apps={}), {"apps": apps})
    server = SimulatorServer(config, host="127.0.0.1", port=0, clock=clock)
    server.start()
    try:
        yield SimulatorHandle(server, app_id, vod_token)
    finally:
        server.stop()
