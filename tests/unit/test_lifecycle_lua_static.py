"""Static checks of the lifecycle Lua scripts: each header documents the KEYS it uses, and no
script (nor a helper of lib.lua) builds a key name: keys only come from KEYS.

The integration side (tests/integration/test_lifecycle_keys_redis.py) runs whole flows with
every ``redis.call`` refused unless its key is in KEYS, and compares the KEYS documented here
with what the Python side passes.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

LUA = resources.files("schedules.lua")
SCRIPTS = sorted(e.name for e in LUA.iterdir() if e.name.endswith(".lua"))
DISCOVERY_LINE = "-- discovery helpers"

_KEYS_DOC = re.compile(r"KEYS\[(\d+)(\.\.)?\]")
_CALL = re.compile(r"\bredis\.p?call\(")


def source(name: str) -> str:
    return LUA.joinpath(name).read_text(encoding="utf-8")


def library() -> str:
    """lib.lua down to the discovery helpers (the lifecycle's part)."""
    text = resources.files("worker.lua").joinpath("lib.lua").read_text(encoding="utf-8")
    return text.split(DISCOVERY_LINE, 1)[0]


def header(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


def documented_keys(text: str) -> tuple[int, int | None]:
    """(N, tail): the header documents KEYS[1..N], plus KEYS[tail..] when ``tail`` is set."""
    fixed, tail = set(), None
    for index, open_end in _KEYS_DOC.findall(header(text)):
        if open_end:
            tail = int(index)
        else:
            fixed.add(int(index))
    count = max(fixed, default=0)
    assert fixed == set(range(1, count + 1)), f"KEYS documented with gaps: {sorted(fixed)}"
    assert tail in (None, count + 1), f"KEYS[{tail}..] does not follow KEYS[{count}]"
    return count, tail


def split_args(text: str, start: int) -> list[str]:
    """The top-level arguments of the call whose "(" is at ``start - 1``."""
    args, depth, current, i, quote = [], 0, "", start, ""
    while i < len(text):
        c = text[i]
        if quote:
            current += c
            if c == "\\":
                current += text[i + 1]
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
            current += c
        elif c in "([{":
            depth += 1
            current += c
        elif c in ")]}":
            if depth == 0:
                args.append(current.strip())
                return args
            depth -= 1
            current += c
        elif c == "," and depth == 0:
            args.append(current.strip())
            current = ""
        else:
            current += c
        i += 1
    raise AssertionError("unbalanced call")


def built(expression: str) -> bool:
    """Whether an expression used as a key may be made of text: a concatenation, or ARGV."""
    return ".." in expression.replace("...", "") or "ARGV" in expression


def assignments(text: str, name: str) -> list[str]:
    """The right-hand sides assigned to ``name`` (``local a, b = x, y`` counts positionally)."""
    found = []
    for line in text.splitlines():
        match = re.match(r"\s*(?:local\s+)?([\w\s,]+?)\s*=(?!=)\s*(.+)$", line)
        if not match:
            continue
        names = [n.strip() for n in match.group(1).split(",")]
        if name in names:
            values = split_args(match.group(2) + ")", 0)
            position = names.index(name)
            found.append(values[position] if position < len(values) else match.group(2))
    return found


def key_arguments(text: str, helpers: dict[str, list[int]]) -> list[str]:
    """Every expression used as a key: the key of each redis.call, and the key arguments of
    each call to a lib.lua helper (``helpers``: name -> key parameter positions)."""
    found = [split_args(text, m.end())[1] for m in _CALL.finditer(text)]
    for name, positions in helpers.items():
        for match in re.finditer(rf"(?<![\w.]){name}\(", text):
            if re.search(rf"function\s+{name}\($", text[: match.end()]):
                continue
            args = split_args(text, match.end())
            found.extend(args[p] for p in positions if p < len(args))
    return found


def helper_key_params(text: str) -> dict[str, list[int]]:
    """The top-level functions of ``text`` and which of their parameters are keys (used as a
    key in their body, directly or through another such function)."""
    helpers: dict[str, list[int]] = {}
    for match in re.finditer(r"local function (\w+)\(([^)]*)\)(.*?)\nend", text, re.S):
        name, params, body = match.group(1), match.group(2), match.group(3)
        names = [p.strip() for p in params.split(",") if p.strip()]
        used = set(key_arguments(body, helpers))
        helpers[name] = [i for i, p in enumerate(names) if p in used]
    return helpers


def building_keys(text: str) -> list[str]:
    """The key expressions of script ``text`` (run after lib.lua) that build a name, directly,
    through a variable, or through a function that uses its parameter as a key."""
    helpers = helper_key_params(library() + "\n" + text)
    bad = []
    for expression in key_arguments(text, helpers):
        if built(expression):
            bad.append(expression)
            continue
        base = re.match(r"\w+", expression)
        if base and base.group(0) != "KEYS":
            bad.extend(v for v in assignments(text, base.group(0)) if built(v))
    return bad


HELPERS = helper_key_params(library())


def test_the_library_helpers_take_their_keys_as_parameters() -> None:
    assert HELPERS["note"] == [1] and HELPERS["room_note"] == [1]
    assert HELPERS["booking_state"] == [1, 2, 3, 4]
    assert HELPERS["tell"] == [1, 2]
    assert HELPERS["dead_letter"] == [1, 2, 3]
    assert HELPERS["open_op"] == [1, 2, 3]
    assert building_keys("") == []


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_header_documents_the_keys_it_uses(name: str) -> None:
    text = source(name)
    count, tail = documented_keys(text)
    assert count > 0, f"{name}: no KEYS in its header"
    body = text[len(header(text)) :]
    used = {int(i) for i in re.findall(r"KEYS\[(\d+)\]", body)}
    undocumented = {i for i in used if i > count and (tail is None or i < tail)}
    assert not undocumented, f"{name} uses undocumented KEYS {undocumented}"
    computed = re.findall(r"KEYS\[(?!\d+\])", body)
    assert not computed or tail is not None, f"{name} indexes KEYS past its documented ones"
    assert "ARGV[" in header(text) or "ARGV" not in body


@pytest.mark.parametrize("name", SCRIPTS)
def test_no_script_builds_a_key(name: str) -> None:
    text = source(name)
    assert building_keys(text) == [], name
    for line in header(text).splitlines():
        if "ARGV[" in line:
            assert not re.search(r"prefix|\bbase\b", line, re.I), f"{name}: {line}"


OLD_APPLY_ACTION = """
local base = ARGV[7]
local K_ROOM
local function use_room(room_id)
  K_ROOM = base .. 'room:' .. room_id
end
redis.call('HGET', K_ROOM, 'state')
"""
OLD_LOG_STOP = "redis.call('HSET', ARGV[2] .. session_id, 'stopped_at', ARGV[1])"
OLD_FINISH_CALL = "note(ctx, hprefix .. id, {event = 'vendor'})"


@pytest.mark.parametrize("snippet", [OLD_APPLY_ACTION, OLD_LOG_STOP, OLD_FINISH_CALL])
def test_the_check_finds_keys_built_the_old_way(snippet: str) -> None:
    assert building_keys(snippet) != []
