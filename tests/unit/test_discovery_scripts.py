"""The discovery Lua scripts as text: every key comes in KEYS, each header names its KEYS and
ARGV, and only the limiter reads Redis TIME (the others take "now" in ARGV)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

PACKAGE = "worker.discovery.lua"
SCRIPTS = sorted(e.name for e in resources.files(PACKAGE).iterdir() if e.name.endswith(".lua"))
#: The one script on the server's clock (see worker/discovery/limiter.py for why).
ON_REDIS_TIME = {"sliding_window.lua"}

_CALL = re.compile(r"redis\.call\(\s*'(\w+)'\s*(?:,\s*([^,)]+))?")
_KEY_ALIAS = re.compile(r"local\s+(\w+)\s*=\s*(KEYS\[\d+\])")


def _source(name: str) -> str:
    return resources.files(PACKAGE).joinpath(name).read_text(encoding="utf-8")


def _header(source: str) -> str:
    lines = source.splitlines()
    return "\n".join(line for line in lines[: next(i for i, x in enumerate(lines) if not x)])


def test_the_scripts_are_found() -> None:
    assert set(SCRIPTS) >= {
        "claim.lua",
        "lease_due.lua",
        "lookup_request.lua",
        "sliding_window.lua",
    }


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_key_a_script_touches_comes_in_keys(name: str) -> None:
    source = _source(name)
    aliases = {alias: key for alias, key in _KEY_ALIAS.findall(source)}
    calls = _CALL.findall(source)
    assert calls
    for command, first in calls:
        if command == "TIME":
            continue
        key = first.strip()
        assert re.fullmatch(r"KEYS\[\d+\]", aliases.get(key, key)), (command, key)


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_header_names_every_key_and_argument_used(name: str) -> None:
    source = _source(name)
    header = _header(source)
    body = source[len(header) :]
    for used in set(re.findall(r"(?:KEYS|ARGV)\[\d+\]", body)):
        assert f"-- {used}" in header, used


@pytest.mark.parametrize("name", SCRIPTS)
def test_only_the_limiter_reads_redis_time(name: str) -> None:
    reads_time = "redis.call('TIME')" in _source(name)
    assert reads_time == (name in ON_REDIS_TIME)


@pytest.mark.parametrize("name", ["claim.lua", "lease_due.lua"])
def test_scheduling_scripts_take_now_from_argv_1(name: str) -> None:
    assert "now_ms(ARGV[1])" in _source(name)
    assert re.search(r"-- ARGV\[1\]\s+now ms", _header(_source(name)))


def test_discovery_helpers_sit_at_the_end_of_the_shared_library() -> None:
    library = resources.files("worker.lua").joinpath("lib.lua").read_text(encoding="utf-8")
    before, marker, after = library.partition("\n-- discovery helpers\n")
    assert marker and "local function now_ms(" in after and "now_ms" not in before
