"""The checks on what strangers send: text, download URLs, times (pure, no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from config.settings import SettingsError, load_settings
from worker.anyrtc.fields import check_text, china_local_time, download_url, plausible_time
from worker.web.auth import require_callback_auth, scrubbed_forms


def test_the_guides_old_time_form_is_china_standard_time() -> None:
    assert china_local_time("2018-3-21 13:06:27") == datetime(2018, 3, 21, 5, 6, 27, tzinfo=UTC)
    assert china_local_time("1521608787") is None
    with pytest.raises(ValueError, match="not a date"):
        china_local_time("2018-13-40 10:00:00")


@pytest.mark.parametrize("year", [1999, 2100])
def test_implausible_times_are_refused(year: int) -> None:
    with pytest.raises(ValueError, match="plausible"):
        plausible_time(datetime(year, 6, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://[::1/a.mp4", "valid URL"),
        ("http://h:99999/a.mp4", "valid URL"),
        ("http://h:0/a.mp4", "port 0"),
        ("http://", "no host"),
        ("http://h/a b.mp4", "white space"),
        ("ftp://h/a.mp4", "http"),
        ("http://h/\ud800", "surrogate"),
        ("http://h/" + "a" * 3000, "at most"),
    ],
)
def test_bad_download_urls_are_refused(url: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        download_url(url)


def test_the_host_allow_list_takes_names_and_subdomains() -> None:
    hosts = frozenset({"vod.example", ".anyrtc.io"})
    assert download_url("https://VOD.example:8443/a.mp4", hosts)
    assert download_url("http://anyrtc.io/a.mp4", hosts)
    assert download_url("http://cdn.anyrtc.io/a.mp4", hosts)
    for url in ("http://evil.example/a", "http://xanyrtc.io/a", "http://vod.example.evil/a"):
        with pytest.raises(ValueError, match="CALLBACK_URL_HOSTS"):
            download_url(url, hosts)


@given(st.text())
def test_accepted_text_always_encodes(text: str) -> None:
    try:
        check_text(text, max_chars=50)
    except ValueError:
        return
    text.encode("utf-8")
    assert len(text) <= 50


def test_the_web_process_needs_a_token_unless_told_otherwise() -> None:
    with pytest.raises(SettingsError, match=r"CALLBACK_TOKEN is not set.*CALLBACK_AUTH=off"):
        require_callback_auth(load_settings(CALLBACK_TOKEN=None, CALLBACK_AUTH="on"))
    require_callback_auth(load_settings(CALLBACK_TOKEN=None, CALLBACK_AUTH="off"))
    require_callback_auth(load_settings(CALLBACK_TOKEN=SecretStr("t")))
    # A blank token is no token.
    assert load_settings(CALLBACK_TOKEN=SecretStr("  ")).callback_token is None


def test_secrets_are_scrubbed_in_their_url_forms_too() -> None:
    forms = scrubbed_forms(["a/b+c d"])
    assert {"a/b+c d", "a%2Fb%2Bc%20d", "a%2Fb%2Bc+d"} <= set(forms)
