from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, load_settings

ALL_VARS = [
    "ANYRTC_APP_ID",
    "ANYRTC_VOD_TOKEN",
    "ANYRTC_RECORD_API_URL",
    "ANYRTC_VOD_API_URL",
    "ANYRTC_ROOM_TYPE",
    "ANYRTC_HTTP_TIMEOUT_S",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "QUERY_RATE_LIMIT",
    "QUERY_RATE_PERIOD_S",
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ANYRTC_APP_ID", "app")
    clean_env.setenv("ANYRTC_VOD_TOKEN", "tok")
    s = load_settings()
    assert s.anyrtc_record_api_url == "https://www.anyrtc.io/anyapi/v1"
    assert s.anyrtc_vod_api_url == "http://vdn.anyrtc.cc/oauth/anyapi/v1"
    assert s.anyrtc_room_type == "Meet"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.broker_url == s.redis_url == s.celery_broker_url
    assert (s.query_rate_limit, s.query_rate_period_s) == (5, 60)


def test_missing_variables_are_named_in_one_line(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert "ANYRTC_APP_ID is not set" in message
    assert "ANYRTC_VOD_TOKEN is not set" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUERY_RATE_LIMIT", "zero"),
        ("QUERY_RATE_LIMIT", "0"),
        ("QUERY_RATE_PERIOD_S", "-1"),
        ("ANYRTC_HTTP_TIMEOUT_S", "0"),
        ("ANYRTC_VOD_API_URL", "vdn.anyrtc.cc"),
        ("REDIS_URL", "localhost"),
        ("ANYRTC_VOD_TOKEN", "   "),
        ("DOWNSTREAM_QUEUES", "archive=recording..ready"),
        ("DOWNSTREAM_QUEUES", "archive="),
        ("LOG_FORMAT", "xml"),
        ("REDIS_KEY_PREFIX", "acme}x"),
        ("REDIS_KEY_PREFIX", "{acme"),
        ("REDIS_KEY_PREFIX", "ac me"),
    ],
)
def test_invalid_value_names_the_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv("ANYRTC_APP_ID", "app")
    clean_env.setenv("ANYRTC_VOD_TOKEN", "tok")
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith("configuration error: ")
    assert f"{name} is invalid" in str(info.value)


def test_token_is_never_printed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ANYRTC_APP_ID", "app")
    clean_env.setenv("ANYRTC_VOD_TOKEN", "super-secret-token")
    s = load_settings()
    assert "super-secret-token" not in repr(s)
    assert "super-secret-token" not in str(s.model_dump())
    assert s.anyrtc_vod_token.get_secret_value() == "super-secret-token"


def test_dotenv_file_is_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "ANYRTC_APP_ID=from-file\nANYRTC_VOD_TOKEN=t\nQUERY_RATE_LIMIT=3\n"
    )
    s = Settings()
    assert s.anyrtc_app_id == "from-file"
    assert s.query_rate_limit == 3


def test_broker_url_overrides(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ANYRTC_APP_ID", "app")
    clean_env.setenv("ANYRTC_VOD_TOKEN", "tok")
    clean_env.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/5")
    assert load_settings().broker_url == "redis://127.0.0.1:6379/5"


def test_callback_grace_defaults_to_one_poll_interval_and_zero_means_none(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name in ("POLL_INTERVAL_S", "CALLBACK_GRACE_S"):
        clean_env.delenv(name, raising=False)
    clean_env.setenv("ANYRTC_APP_ID", "app")
    clean_env.setenv("ANYRTC_VOD_TOKEN", "tok")
    assert load_settings().callback_grace == 60
    clean_env.setenv("POLL_INTERVAL_S", "20")
    assert load_settings().callback_grace == 20
    clean_env.setenv("CALLBACK_GRACE_S", "0")
    assert load_settings().callback_grace == 0


def test_missing_after_defaults_to_transcode_plus_two_polls_and_silence_to_half_an_hour(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name in ("POLL_INTERVAL_S", "EXPECTED_TRANSCODE_S", "MISSING_AFTER_S"):
        clean_env.delenv(name, raising=False)
    clean_env.setenv("ANYRTC_APP_ID", "app")
    clean_env.setenv("ANYRTC_VOD_TOKEN", "tok")
    settings = load_settings()
    assert settings.missing_after == 900 + 2 * 60
    assert (settings.callbacks_expected, settings.callback_silence_s) == ("on", 1800)
    clean_env.setenv("POLL_INTERVAL_S", "20")
    clean_env.setenv("EXPECTED_TRANSCODE_S", "100")
    assert load_settings().missing_after == 140
    clean_env.setenv("MISSING_AFTER_S", "7")
    assert load_settings().missing_after == 7
    clean_env.setenv("CALLBACKS_EXPECTED", "maybe")
    with pytest.raises(SystemExit, match="CALLBACKS_EXPECTED"):
        load_settings()
