"""The simulated vendor: rooms, files, budget and faults, driven by an injected clock.

No I/O and no sleeping here: every call returns an :class:`Outcome` that the HTTP layer (or a
unit test) carries out, so the whole vendor logic runs under a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from worker.anyrtc import results
from worker.simulator.budget import SlidingWindowBudget
from worker.simulator.config import (
    SimulatorConfig,
    apply_updates,
    public_config,
)
from worker.simulator.faults import FaultInjector, FaultPlan
from worker.simulator.filestore import CallbackJob, FileStore
from worker.simulator.journal import Journal, query_secrets, redact
from worker.simulator.queries import (
    SUCCESS_MESSAGES,
    check_query,
    forced_code,
    listing,
    media_type,
    query_outcome,
    query_verdict,
)
from worker.simulator.responses import (
    QUERY_MESSAGES,
    Outcome,
    json_outcome,
    query_envelope,
)
from worker.simulator.rooms import Room, apply_record_call, meeting_room, record_fault_outcome
from worker.simulator.validation import (
    BadParameter,
    QueryRequest,
    parse_json_object,
    parse_query,
)

__all__ = ["CallbackJob", "SimulatorState"]


class SimulatorState:
    """The vendor's behaviour; thread-safe, every method may be called from any thread."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        base_url: str = "http://127.0.0.1",
    ) -> None:
        self.clock = clock
        #: Where download URLs point when ``public_url`` is unset; the server sets it on bind.
        self.base_url = base_url
        self.journal = Journal()
        self._lock = threading.RLock()
        self._config = apply_updates(config or SimulatorConfig(), {})
        #: What :meth:`reset` returns to, so one test's faults never leak into the next.
        self._initial_config = apply_updates(self._config, {})
        self._secrets = set(self._config.apps.values()) | query_secrets(self._config.callback_url)
        self._budget = SlidingWindowBudget()
        self._faults = FaultInjector(self._config.seed)
        self._files = FileStore()
        self._reseed()
        self._rooms: dict[tuple[str, str], Room] = {}
        #: Bumped by :meth:`reset` so callbacks decided before it are not sent after it.
        self.generation = 0

    # -- configuration -------------------------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        """The configuration in force (treat as read-only; change it with :meth:`configure`)."""
        return self._config

    def configure(self, updates: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a partial config change (ValueError if invalid); return the public view."""
        with self._lock:
            self._config = apply_updates(self._config, updates)
            # Old tokens stay secret too: a journal must not leak the token it was replaced by.
            self._secrets.update(self._config.apps.values())
            self._secrets.update(query_secrets(self._config.callback_url))
            if "seed" in updates:
                self._reseed()
            return redact(public_config(self._config), self._secrets)

    def public_config(self) -> dict[str, Any]:
        """The configuration with tokens shown as ``***``."""
        with self._lock:
            return redact(public_config(self._config), self._secrets)

    def reset(self, updates: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Forget rooms, files, journal, budget, pending callbacks and ``inject_next``.

        The configuration returns to the one the simulator started with (faults off again,
        runtime changes undone); ``updates`` are applied on top of it.
        """
        with self._lock:
            new = apply_updates(self._initial_config, updates or {})
            self._config = new
            self._secrets.update(new.apps.values())
            self._secrets.update(query_secrets(new.callback_url))
            self._rooms.clear()
            self._files.clear()
            self._budget.clear()
            self.journal.clear()
            self.generation += 1
            self._reseed()
            return redact(public_config(self._config), self._secrets)

    @property
    def secrets(self) -> frozenset[str]:
        """Every token ever configured (what the journal and logs scrub)."""
        with self._lock:
            return frozenset(self._secrets)

    def _reseed(self) -> None:
        self._files.reseed(self._config.seed)
        self._faults.reseed(self._config.seed)

    # -- startrecord / stoprecord ----------------------------------------------------------

    def record_call(
        self, endpoint: str, query: Mapping[str, list[str]], body: bytes, client_ip: str
    ) -> Outcome:
        """Handle ``startrecord`` or ``stoprecord``; faults strike before the room changes."""
        with self._lock:
            # Read under the lock so arrival times reach the budget and journal in order.
            now = self.clock()
            cfg = self._config
            delay = self._faults.latency(cfg.faults, endpoint)
            plan = self._faults.plan(cfg.faults, endpoint)
            if plan is not None and plan.kind != "hang":
                outcome = record_fault_outcome(plan)
                verdict = "fault: http 500" if plan.kind == "error" else plan.label
            else:
                result, stopped = apply_record_call(
                    cfg, self._rooms, endpoint, query, body, client_ip, now
                )
                if stopped is not None:
                    self._files.add_recording(stopped, now, cfg, self.base_url)
                outcome = json_outcome({"result": result})
                verdict = "ok" if result == results.OK else f"result: {result}"
                if plan is not None:
                    # The vendor did the work; only the answer is late (the client may give up).
                    delay += plan.hang_s
                    verdict = f"{plan.label}; {verdict}"
            outcome.delay_s = delay
            params: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in query.items()}
            params.update(_body_for_journal(body))
            result_text = outcome.payload.get("result") if outcome.payload else None
            outcome.entry = self.journal.add(
                time=now,
                endpoint=endpoint,
                client_ip=client_ip,
                params=params,
                verdict=verdict,
                secrets=self._secrets,
                result=result_text,
                http_status=None if outcome.drop else outcome.status,
            )
            return outcome

    # -- query endpoints -----------------------------------------------------------------

    def query_call(
        self, endpoint: str, body: bytes, content_type: str | None, client_ip: str
    ) -> Outcome:
        """Handle a query endpoint; checks run in the vendor's order, faults after admission."""
        with self._lock:
            now = self.clock()
            cfg = self._config
            delay = self._faults.latency(cfg.faults, endpoint)
            request: QueryRequest | None = None
            plan: FaultPlan | None = None
            try:
                if media_type(content_type) != "application/json":
                    raise BadParameter("Content-Type must be application/json")
                request = parse_query(endpoint, parse_json_object(body, allow_empty=False))
            except BadParameter as exc:
                code, detail = 400, str(exc)
            else:
                code, detail = check_query(cfg, self._budget, request, now)
            if code == 200:
                # Only admitted calls meet faults, so a forced code still needed a valid call.
                plan = self._faults.plan(cfg.faults, endpoint)
                code, detail = forced_code(plan, code, detail)
            content = None
            if code == 200 and request is not None:
                content = listing(self._files.all(), endpoint, request, now, cfg.response_variant)
                message = SUCCESS_MESSAGES[endpoint]
            else:
                message = QUERY_MESSAGES.get(code, f"error {code}")
                message = f"{message}: {detail}" if detail else message
            payload = query_envelope(
                round(now * 1000), code, message, content, cfg.response_variant
            )
            outcome = query_outcome(plan, payload)
            outcome.delay_s = delay + (plan.hang_s if plan is not None else 0.0)
            outcome.entry = self.journal.add(
                time=now,
                endpoint=endpoint,
                client_ip=client_ip,
                params=_body_for_journal(body),
                verdict=query_verdict(plan, code),
                secrets=self._secrets,
                code=code if outcome.status == 200 and not outcome.drop else None,
                http_status=None if outcome.drop else outcome.status,
            )
            return outcome

    # -- admin and observation -----------------------------------------------------------

    def record_meeting(
        self,
        room_id: str,
        start: float,
        end: float,
        *,
        user_data: str = "",
        app_id: str | None = None,
        name_rule: str | None = None,
    ) -> list[dict[str, Any]]:
        """Files of a meeting the vendor recorded by itself (console auto-recording)."""
        with self._lock:
            cfg = self._config
            room = meeting_room(
                cfg, room_id, start, end, user_data=user_data, app_id=app_id, name_rule=name_rule
            )
            now = self.clock()
            views = [
                f.admin_view(now) for f in self._files.add_recording(room, end, cfg, self.base_url)
            ]
            return redact(views, self._secrets)

    def rooms(self) -> list[dict[str, Any]]:
        """Rooms being recorded now (tokens scrubbed, e.g. from a careless ``UserData``)."""
        with self._lock:
            return redact([dict(room.__dict__) for room in self._rooms.values()], self._secrets)

    def files(self) -> list[dict[str, Any]]:
        """Every file with its current status, in creation order (tokens scrubbed)."""
        with self._lock:
            now = self.clock()
            return redact([f.admin_view(now) for f in self._files.all()], self._secrets)

    def vod_available(self, fileid: str) -> bool:
        """Whether ``/vod/<fileid>.mp4`` can be downloaded now (the file has been uploaded)."""
        with self._lock:
            file = self._files.get(fileid)
            return file is not None and self.clock() >= file.upload_at

    # -- callbacks -----------------------------------------------------------------------

    def due_callbacks(self) -> list[CallbackJob]:
        """Callbacks to send now: files that reached status 2 and were not called back yet."""
        with self._lock:
            return self._files.due_callbacks(
                self._config, self.clock(), self.journal, self._secrets, self.generation
            )


def _body_for_journal(body: bytes) -> dict[str, Any]:
    try:
        value = parse_json_object(body, allow_empty=True)
    except BadParameter:
        return {"_body": body[:500].decode("utf-8", "replace")}
    return value
