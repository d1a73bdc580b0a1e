"""Redis connections and the product's one Lua script loader.

Every Lua script of the product is loaded here: each package keeps its scripts as ``*.lua``
files in a ``lua`` sub-package (``schedules/lua``, ``worker/discovery/lua``), and the loader
prepends the shared helper library ``worker/lua/lib.lua`` to each, so no helper is written
twice. Scripts are read from disk once per process and registered once per client (EVALSHA,
loaded on the first NOSCRIPT).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from importlib import resources

import redis
from redis.commands.core import Script

__all__ = [
    "LIBRARY",
    "ScriptSet",
    "get_redis",
    "hash_tag",
    "redis_from_url",
    "script_source",
    "scripts_for",
    "warm_connections",
]

#: The helper library every script is prepended with: (package, file name).
LIBRARY = ("worker.lua", "lib.lua")


def redis_from_url(url: str) -> redis.Redis:
    """A decoding client with short socket timeouts (a hung Redis must not hang a worker)."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=30,
    )


@lru_cache(maxsize=8)
def get_redis(url: str | None = None) -> redis.Redis:
    """The process-wide client for ``url`` (default: ``REDIS_URL``)."""
    if url is None:
        from config.settings import get_settings

        url = get_settings().redis_url
    return redis_from_url(url)


def hash_tag(prefix: str) -> str:
    """``{<prefix>}``: every key of the deployment under ``prefix`` starts with it, so the keys
    one script touches share one Redis Cluster slot (the ``limits`` convention)."""
    return "{" + prefix + "}"


@lru_cache(maxsize=64)
def _read(package: str, filename: str) -> str:
    return resources.files(package).joinpath(filename).read_text(encoding="utf-8")


def script_source(package: str, name: str) -> str:
    """The text Redis runs for script ``name`` of ``package``: the library, then the script."""
    library = _read(*LIBRARY)
    return f"{library}\n-- {package}/{name}.lua\n{_read(package, name + '.lua')}"


class ScriptSet:
    """The scripts of one ``lua`` package registered on one client, by file stem:
    ``scripts.claim_due(keys=[...], args=[...])`` runs ``claim_due.lua``."""

    def __init__(self, client: redis.Redis, package: str) -> None:
        self.package = package
        names = sorted(
            entry.name.removesuffix(".lua")
            for entry in resources.files(package).iterdir()
            if entry.name.endswith(".lua")
        )
        self._scripts = {
            name: client.register_script(script_source(package, name)) for name in names
        }

    def __getattr__(self, name: str) -> Script:
        try:
            return self._scripts[name]
        except KeyError:
            raise AttributeError(f"no script {name}.lua in {self.package}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._scripts

    def ensure_loaded(self) -> int:
        """Load every script Redis does not hold (a new server, a restart, SCRIPT FLUSH): one
        round trip when all are there. A caller about to run many scripts at once calls this
        first, so its threads do not each meet NOSCRIPT and load the same script at that moment.
        Returns how many were loaded."""
        scripts = list(self._scripts.values())
        client = scripts[0].registered_client if scripts else None
        if client is None:
            return 0
        held = client.script_exists(*(script.sha for script in scripts))
        missing = [script for script, there in zip(scripts, held, strict=True) if not there]
        for script in missing:
            client.script_load(script.script)
        return len(missing)


_cache: dict[tuple[int, str], tuple[redis.Redis, ScriptSet]] = {}
_lock = threading.Lock()


def scripts_for(client: redis.Redis, package: str) -> ScriptSet:
    """Every script of ``package`` registered on ``client`` (built once per client)."""
    with _lock:
        cached = _cache.get((id(client), package))
        if cached is None or cached[0] is not client:
            cached = (client, ScriptSet(client, package))
            _cache[(id(client), package)] = cached
        return cached[1]


_warm_lock = threading.Lock()


def warm_connections(client: redis.Redis, count: int) -> int:
    """Make sure ``client``'s pool holds ``count`` connections, opened now: threads about to
    run commands at once then do not each open one (TCP, HELLO, CLIENT SETINFO) at that moment.
    Connections already open are reused; returns ``count``."""
    pool = client.connection_pool
    with _warm_lock:
        taken = []
        try:
            for _ in range(count):
                taken.append(pool.get_connection())
        finally:
            for connection in taken:
                pool.release(connection)
    return len(taken)
