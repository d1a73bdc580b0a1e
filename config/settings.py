"""One environment-driven settings object for every process of the product.

Variable names are a public contract: they are documented in README.md and kept stable.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.downstream import parse_downstream_queues

__all__ = ["Settings", "SettingsError", "get_settings", "load_settings"]


class SettingsError(SystemExit):
    """Start-up configuration is missing or invalid; the message names the variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Settings(BaseSettings):
    """Everything the worker, dispatcher, web receiver and tools read from the environment."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    anyrtc_app_id: str = Field(min_length=1, validation_alias="ANYRTC_APP_ID")
    anyrtc_vod_token: SecretStr = Field(validation_alias="ANYRTC_VOD_TOKEN")
    anyrtc_record_api_url: str = Field(
        "https://www.anyrtc.io/anyapi/v1", validation_alias="ANYRTC_RECORD_API_URL"
    )
    anyrtc_vod_api_url: str = Field(
        "http://vdn.anyrtc.cc/oauth/anyapi/v1", validation_alias="ANYRTC_VOD_API_URL"
    )
    anyrtc_room_type: str = Field("Meet", min_length=1, validation_alias="ANYRTC_ROOM_TYPE")
    # The room types a booking event may name (comma-separated, case-sensitive as the vendor);
    # anything else is dead-lettered at once instead of failing at start time.
    anyrtc_room_types: str = Field("Meet", min_length=1, validation_alias="ANYRTC_ROOM_TYPES")
    anyrtc_http_timeout_s: float = Field(
        10.0, gt=0, le=300, validation_alias="ANYRTC_HTTP_TIMEOUT_S"
    )

    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    celery_broker_url: str | None = Field(None, validation_alias="CELERY_BROKER_URL")

    query_rate_limit: int = Field(5, ge=1, le=10_000, validation_alias="QUERY_RATE_LIMIT")
    query_rate_period_s: float = Field(
        60.0, gt=0, le=86_400, validation_alias="QUERY_RATE_PERIOD_S"
    )

    redis_key_prefix: str = Field("anyrtc", min_length=1, validation_alias="REDIS_KEY_PREFIX")
    celery_result_backend: str | None = Field(None, validation_alias="CELERY_RESULT_BACKEND")
    # Opt-in: Celery's broker and result keys start with this. Empty by default, so a booking
    # system's plain Celery client (which knows only the URL) finds the queues and results.
    celery_broker_key_prefix: str = Field(
        "", max_length=100, validation_alias="CELERY_BROKER_KEY_PREFIX"
    )

    # Lifecycle: booked windows, dispatcher, leases, retries.
    window_lead_s: float = Field(0.0, ge=0, le=3600, validation_alias="WINDOW_LEAD_S")
    window_tail_s: float = Field(0.0, ge=0, le=3600, validation_alias="WINDOW_TAIL_S")
    # A dead worker's claimed action or vendor call is issued again this long after its last
    # heartbeat; a living one renews it every third of it (schedules/leases.py).
    action_lease_s: float = Field(3.0, gt=0, le=3600, validation_alias="ACTION_LEASE_S")
    stop_retry_s: float = Field(3600.0, gt=0, validation_alias="STOP_RETRY_S")
    max_booking_s: float = Field(12 * 3600.0, gt=0, validation_alias="MAX_BOOKING_S")
    dispatch_interval_s: float = Field(1.0, gt=0, le=60, validation_alias="DISPATCH_INTERVAL_S")
    retry_backoff_base_s: float = Field(1.0, gt=0, validation_alias="RETRY_BACKOFF_BASE_S")
    retry_backoff_max_s: float = Field(60.0, gt=0, validation_alias="RETRY_BACKOFF_MAX_S")
    # Claim actions this long before they are due and hand them over with a short Celery eta,
    # so a herd's messages are in the workers before the second they are due (0: at due time).
    dispatch_ahead_s: float = Field(2.0, ge=0, le=10, validation_alias="DISPATCH_AHEAD_S")
    # The vendor's undocumented result strings for "already recording" / "not recording"
    # (schedules/vendor.py: entries split by ";" or new lines, "re:<regex>" for a pattern).
    anyrtc_already_recording_results: str = Field(
        "room is already recording", validation_alias="ANYRTC_ALREADY_RECORDING_RESULTS"
    )
    anyrtc_not_recording_results: str = Field(
        "room is not recording", validation_alias="ANYRTC_NOT_RECORDING_RESULTS"
    )

    # Discovery: limiter margin, polling, callback receiver, downstream fan-out.
    query_rate_margin_s: float = Field(2.0, ge=0, le=600, validation_alias="QUERY_RATE_MARGIN_S")
    poll_interval_s: float | None = Field(None, gt=0, validation_alias="POLL_INTERVAL_S")
    poll_overlap_s: float = Field(900.0, ge=0, validation_alias="POLL_OVERLAP_S")
    poll_page_max: int = Field(50, ge=1, le=100, validation_alias="POLL_PAGE_MAX")
    expected_transcode_s: float = Field(900.0, gt=0, validation_alias="EXPECTED_TRANSCODE_S")
    # Discovery work a dead worker held (the poll, an unconfirmed message, a room look-up) is
    # taken over this long after its last heartbeat; a living one renews it every third of it.
    discovery_lease_s: float = Field(3.0, gt=0, le=3600, validation_alias="DISCOVERY_LEASE_S")
    # How long a final file found by the poll or a room look-up waits for its callback (which
    # alone gives type, file name, user and media type) before it is published without them.
    callback_grace_s: float | None = Field(None, ge=0, validation_alias="CALLBACK_GRACE_S")
    missing_after_s: float | None = Field(None, gt=0, validation_alias="MISSING_AFTER_S")
    callbacks_expected: str = Field(
        "on", pattern="^(on|off)$", validation_alias="CALLBACKS_EXPECTED"
    )
    callback_silence_s: float = Field(1800.0, gt=0, validation_alias="CALLBACK_SILENCE_S")
    callback_token: SecretStr | None = Field(None, validation_alias="CALLBACK_TOKEN")
    # The web process refuses to start without CALLBACK_TOKEN unless this says "off": anyone who
    # reaches it could otherwise announce a file that is published as a real recording.
    callback_auth: str = Field("on", pattern="^(on|off)$", validation_alias="CALLBACK_AUTH")
    callback_url_hosts: str = Field("", validation_alias="CALLBACK_URL_HOSTS")
    callback_max_body_bytes: int = Field(
        65536, ge=1024, le=10_485_760, validation_alias="CALLBACK_MAX_BODY_BYTES"
    )
    port: int = Field(8000, ge=1, le=65535, validation_alias="PORT")
    downstream_url: str | None = Field(None, validation_alias="DOWNSTREAM_URL")
    downstream_exchange: str = Field(
        "recordings", min_length=1, validation_alias="DOWNSTREAM_EXCHANGE"
    )
    downstream_queues: str = Field("", validation_alias="DOWNSTREAM_QUEUES")

    # Operations.
    log_format: str = Field("text", pattern="^(text|json)$", validation_alias="LOG_FORMAT")
    log_level: str = Field(
        "INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", validation_alias="LOG_LEVEL"
    )
    # user:password for HTTP basic auth on /metrics (open when unset, as exporters are).
    metrics_basic_auth: SecretStr | None = Field(None, validation_alias="METRICS_BASIC_AUTH")

    @field_validator("anyrtc_vod_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("metrics_basic_auth")
    @classmethod
    def _user_colon_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and ":" not in value.get_secret_value():
            raise ValueError("must be user:password")
        return value

    @field_validator("callback_token")
    @classmethod
    def _blank_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        # "CALLBACK_TOKEN=" in a .env must not switch authentication on with an empty secret.
        if value is None or not value.get_secret_value().strip():
            return None
        return value

    @field_validator("callback_url_hosts")
    @classmethod
    def _host_list(cls, value: str) -> str:
        for host in (h.strip() for h in value.split(",")):
            if host and (any(c.isspace() or c in "/:@?#" for c in host.lstrip(".")) or host == "."):
                raise ValueError(f"{host!r} is not a host name (e.g. vod.anyrtc.cn or .anyrtc.cn)")
        return value

    @field_validator("anyrtc_app_id")
    @classmethod
    def _app_id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("redis_key_prefix")
    @classmethod
    def _prefix_fits_a_hash_tag(cls, value: str) -> str:
        # Keys are "{<prefix>}:...": a brace in the prefix would end the tag early and scatter
        # one script's keys over several Redis Cluster slots.
        if "{" in value or "}" in value or any(c.isspace() for c in value):
            raise ValueError("must not contain braces or white space")
        return value

    @field_validator("anyrtc_already_recording_results", "anyrtc_not_recording_results")
    @classmethod
    def _result_patterns(cls, value: str) -> str:
        for raw in re.split(r"[;\n]", value):
            entry = raw.strip()
            if entry.startswith("re:"):
                try:
                    re.compile(entry[3:])
                except re.error as exc:
                    raise ValueError(f"bad regular expression {entry!r}: {exc}") from None
        return value

    @field_validator("anyrtc_record_api_url", "anyrtc_vod_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("redis_url", "celery_broker_url", "celery_result_backend", "downstream_url")
    @classmethod
    def _redis_like_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("must be a URL such as redis://127.0.0.1:6379/0")
        return value

    @field_validator("downstream_queues")
    @classmethod
    def _downstream_queues_parse(cls, value: str) -> str:
        # A typo here would otherwise surface only at the first publish.
        try:
            parse_downstream_queues(value)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("DOWNSTREAM_QUEUES: ")) from None
        return value

    @model_validator(mode="after")
    def _broker_defaults_to_redis(self) -> Settings:
        if not self.celery_broker_url:
            self.celery_broker_url = self.redis_url
        return self

    @property
    def room_types(self) -> frozenset[str]:
        """``ANYRTC_ROOM_TYPES`` plus ``ANYRTC_ROOM_TYPE`` (the default is always allowed)."""
        listed = {t.strip() for t in self.anyrtc_room_types.split(",") if t.strip()}
        return frozenset(listed | {self.anyrtc_room_type})

    @property
    def download_hosts(self) -> frozenset[str]:
        """``CALLBACK_URL_HOSTS`` as lower-case names (empty: any host); ``.x.y`` means any
        subdomain of ``x.y``."""
        return frozenset(h.strip().lower() for h in self.callback_url_hosts.split(",") if h.strip())

    @property
    def lease_s(self) -> float:
        """How long claimed work outlives its holder's last heartbeat (``ACTION_LEASE_S``)."""
        return self.action_lease_s

    @property
    def poll_every_s(self) -> float:
        """Seconds between time-list polls: ``POLL_INTERVAL_S``, else one budget period."""
        return self.poll_interval_s or self.query_rate_period_s

    @property
    def callback_grace(self) -> float:
        """Seconds a final file waits for its callback: ``CALLBACK_GRACE_S`` (0: no wait), else
        one poll interval."""
        return self.poll_every_s if self.callback_grace_s is None else self.callback_grace_s

    @property
    def missing_after(self) -> float:
        """Seconds after a recorded session's stop before it is judged for a missing file:
        ``MISSING_AFTER_S``, else ``EXPECTED_TRANSCODE_S`` plus two poll intervals."""
        if self.missing_after_s is not None:
            return self.missing_after_s
        return self.expected_transcode_s + 2 * self.poll_every_s

    @property
    def result_backend(self) -> str:
        return self.celery_result_backend or self.redis_url

    @property
    def downstream_broker_url(self) -> str:
        """Where the downstream topic exchange lives (``DOWNSTREAM_URL``, else ``REDIS_URL``)."""
        return self.downstream_url or self.redis_url

    @property
    def broker_url(self) -> str:
        """The Celery broker URL (``CELERY_BROKER_URL``, else ``REDIS_URL``)."""
        return self.celery_broker_url or self.redis_url


def _env_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    field = settings_cls.model_fields.get(field_name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field_name.upper()


def describe_validation_error(settings_cls: type[BaseSettings], exc: ValidationError) -> str:
    """One line per problem, each naming the environment variable and what is wrong."""
    problems: list[str] = []
    for error in exc.errors():
        location = error.get("loc") or ("",)
        name = _env_name(settings_cls, str(location[0])) if location[0] else "settings"
        if error.get("type") == "missing":
            problems.append(f"{name} is not set (required)")
        else:
            message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
            problems.append(f"{name} is invalid: {message}")
    return "configuration error: " + "; ".join(problems)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment (and ``.env``), or raise SettingsError.

    SettingsError is a SystemExit, so a process that fails here stops with one line naming
    the variable instead of a traceback.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(Settings, exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide Settings, read once."""
    return load_settings()
