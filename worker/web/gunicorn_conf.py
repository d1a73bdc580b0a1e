"""gunicorn settings of the ``web`` process (``gunicorn --config=python:worker.web.gunicorn_conf``).

gunicorn writes its own error and access logs before and around the app: an invalid request
line, for one, is logged verbatim, ``?token=`` included. So its loggers get the product's
:class:`worker.logs.SecretFilter` on every handler, with each secret also in the forms it takes
in a URL. Read at start-up by the master: a missing callback token stops it before any worker
forks, with one line naming the setting.
"""

from __future__ import annotations

from typing import Any

from config.settings import Settings, get_settings
from worker.logs import secrets_of
from worker.web.auth import require_callback_auth, scrubbed_forms

__all__ = ["logconfig_dict"]


def _logconfig(settings: Settings) -> dict[str, Any]:
    formatter: dict[str, Any] = (
        {"()": "worker.logs.JsonFormatter"}
        if settings.log_format == "json"
        else {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s %(message)s"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["secrets"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "secrets": {
                "()": "worker.logs.SecretFilter",
                "secrets": scrubbed_forms(secrets_of(settings)),
            }
        },
        "formatters": {"plain": formatter},
        "handlers": {
            "stdout": {**handler, "stream": "ext://sys.stdout"},
            "stderr": {**handler, "stream": "ext://sys.stderr"},
        },
        "root": {"level": settings.log_level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }


_settings = get_settings()
require_callback_auth(_settings)
logconfig_dict = _logconfig(_settings)
