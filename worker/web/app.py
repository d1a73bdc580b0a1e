"""The callback receiver: validate completely, store, enqueue, answer the vendor at once.

A 2xx means the callback is in Redis (the intake) before the answer leaves, so a crash after it
loses nothing; anything that will not be processed gets a 4xx naming the problem. Answers are
the vendor's shape, ``{"code": 0, "success": true, "message": ...}``; a refusal has
``success: false``, a non-zero ``code`` equal to the HTTP status, and a message naming the
problem. Every refusal is also recorded in ``{<prefix>}:disc:rejects`` (reason, status, clipped
body) and logged; neither ever holds the callback token (the query string is never logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from config.settings import Settings, get_settings
from worker.anyrtc.models import CallbackPayload
from worker.discovery.intake import CallbackIntake
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.ops import OpsLog
from worker.discovery.service import callback_summary
from worker.logs import secrets_of
from worker.redis import get_redis
from worker.web.auth import check_token, require_callback_auth
from worker.web.body import BadBody, parse_object, read_body
from worker.web.metrics import register_metrics

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["CALLBACK_PATH", "create_app"]

log = logging.getLogger(__name__)

CALLBACK_PATH = "/AR/V1/av"
#: Hand a validated callback to the worker (default: ``send_task("discovery.callback")``).
Sender = Callable[[dict[str, Any]], None]


def celery_sender(payload: dict[str, Any], app: Celery | None = None) -> None:
    """Enqueue ``discovery.callback`` with plain JSON args and a short, secret-free repr,
    through ``app`` (default: the product's Celery app)."""
    if app is None:
        from worker.celery import app as product_app

        app = product_app
    app.send_task(
        "discovery.callback", args=[payload], argsrepr=callback_summary(payload), kwargsrepr="{}"
    )


def _answer(status: int, message: str) -> tuple[Response, int]:
    ok = status < 300
    return jsonify(code=0 if ok else status, success=ok, message=message), status


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
    return "invalid callback: " + "; ".join(problems)


def create_app(
    settings: Settings | None = None,
    *,
    sender: Sender | None = None,
    client: redis.Redis | None = None,
) -> Flask:
    """The Flask app; ``sender`` and ``client`` default to Celery and ``REDIS_URL``.

    Raises SettingsError without ``CALLBACK_TOKEN`` unless ``CALLBACK_AUTH=off``.
    """
    settings = settings or get_settings()
    require_callback_auth(settings)
    client = client or get_redis(settings.redis_url)
    send = sender or celery_sender
    keys = DiscoveryKeys(settings.redis_key_prefix)
    # Both tokens: a sender may paste either into a body, and rejects keep a clip of it.
    ops = OpsLog(client, keys, secrets_of(settings))
    intake = CallbackIntake(client, keys)
    context = {"hosts": settings.download_hosts}
    app = Flask("worker.web")
    app.config["MAX_CONTENT_LENGTH"] = settings.callback_max_body_bytes
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    def reject(status: int, reason: str, body: bytes = b"") -> tuple[Response, int]:
        log.warning("callback rejected (HTTP %d): %s", status, reason)
        ops.reject(reason, status, body, remote=request.remote_addr or "")
        return _answer(status, reason)

    @app.post(CALLBACK_PATH)
    def receive_callback() -> tuple[Response, int]:
        refused = check_token(request, settings.callback_token)
        if refused is not None:
            return reject(*refused)
        try:
            raw = read_body(request, settings.callback_max_body_bytes)
        except BadBody as exc:
            return reject(exc.status, exc.reason)
        try:
            data = parse_object(raw)
        except BadBody as exc:
            return reject(exc.status, exc.reason, raw)
        try:
            payload = CallbackPayload.model_validate(data, context=context)
        except ValidationError as exc:
            return reject(422, _validation_message(exc), raw)
        body = payload.model_dump(by_alias=True, mode="json")
        try:
            intake.store(body)
        except redis.RedisError as exc:
            # Not the sender's fault, and nothing is kept: 503, so the vendor tries again.
            log.error("could not store a callback: %s", type(exc).__name__)
            return _answer(503, "callback could not be stored; try again later")
        try:
            send(body)
        except Exception as exc:
            # Stored already: the next poll drains the intake, so the answer is still yes.
            log.error("could not enqueue a callback: %s", type(exc).__name__)
            ops.error("callback-enqueue", f"{type(exc).__name__}", room=payload.group_id)
        return _answer(200, "accepted")

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        try:
            client.ping()
        except redis.RedisError as exc:
            return jsonify(ok=False, redis=type(exc).__name__), 503
        return jsonify(ok=True, redis="ok"), 200

    register_metrics(app, settings, client)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
        limit = settings.callback_max_body_bytes
        return reject(413, f"body larger than {limit} bytes")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        return _answer(status, exc.description or exc.name)

    return app


def __getattr__(name: str) -> Any:
    # ``gunicorn worker.web.app:app`` builds the app on first access, not on import.
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
