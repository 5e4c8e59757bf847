"""The response cache: a bounded LRU in the process, then a Redis (or fakeredis) server.

The key is a stable hash of what determines the answer: the route and the request body
without ``stream`` and ``keep_alive`` (see :func:`pytest_llmperf.client.protocol.cache_identity`).
An entry holds the answer's chunks, so a streamed answer is served back as a stream and a
whole answer as a one-chunk stream. Redis being down never fails a call: the cache logs one
warning, goes on with the first level alone, and tries Redis again after ``retry_after_s``.

An entry in Redis that is not one the cache wrote (not UTF-8, not JSON, not a list of chunks
ending in the final one: another program's key, or a damaged value) is never served: it is a
miss, logged once per cache (a warning through :mod:`logging`), and the fresh answer
overwrites it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_llmperf.client.protocol import cache_identity
from pytest_llmperf.errors import ConfigurationError

log = logging.getLogger("pytest_llmperf.client.cache")

Chunks = list[dict[str, Any]]
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_decode = json.JSONDecoder().raw_decode  # our own compact JSON: no whitespace to skip


class RedisLike(Protocol):
    """The part of the redis-py API the cache uses."""

    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: bytes, *, px: int | None = None) -> Any: ...


@dataclass
class CacheStats:
    """What the cache did; ``redis_error`` holds the last Redis failure, if any."""

    hits_memory: int = 0
    hits_redis: int = 0
    misses: int = 0
    stores: int = 0
    bad_entries: int = 0  # Redis entries that were not the cache's own (each was a miss)
    redis_errors: int = 0
    redis_error: str | None = None

    @property
    def hits(self) -> int:
        return self.hits_memory + self.hits_redis

    @property
    def hit_rate(self) -> float | None:
        looked = self.hits + self.misses
        return self.hits / looked if looked else None


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_redis(url: str) -> RedisLike:
    """A Redis client for ``redis://`` / ``rediss://`` / ``unix://`` URLs, or ``fakeredis``."""
    if url == "fakeredis":
        import fakeredis

        client: RedisLike = fakeredis.FakeRedis()
        return client
    if not url.startswith(REDIS_SCHEMES):
        raise ConfigurationError(
            f"cannot use {url!r} as a cache: give memory, off, or a redis://HOST:PORT/DB URL"
        )
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


class ResponseCache:
    """Two levels: ``memory_size`` entries in the process, then ``redis`` (optional).

    ``ttl_s`` bounds an entry's life on both levels (``None``: no expiry). ``namespace``
    prefixes Redis keys, so several suites can share one server.
    """

    def __init__(
        self,
        redis: RedisLike | None = None,
        *,
        memory_size: int = 1024,
        ttl_s: float | None = None,
        namespace: str = "llmperf",
        redis_name: str = "",
        retry_after_s: float = 30.0,
    ) -> None:
        self.redis = redis
        self.memory_size = memory_size
        self.ttl_s = ttl_s
        self.namespace = namespace
        self.redis_name = redis_name or ("redis" if redis is not None else "")
        self.retry_after_s = retry_after_s
        self.stats = CacheStats()
        self._memory: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._redis_down_until = 0.0

    @staticmethod
    def identity(route: str, request: Mapping[str, Any]) -> str:
        return cache_identity(route, request)

    def redis_key(self, identity: str) -> str:
        return f"{self.namespace}:{hashlib.sha256(identity.encode()).hexdigest()}"

    def get(self, identity: str) -> tuple[str, Chunks] | None:
        """``(level, chunks)`` for a hit (level ``hit-memory`` or ``hit-redis``), else ``None``."""
        data = self._memory_get(identity)
        if data is not None:
            self.stats.hits_memory += 1
            return "hit-memory", _decode(data)[0]
        found = self._redis_get(identity)
        if found is not None:
            entry = self._read(identity, found)
            if entry is not None:
                data, chunks = entry
                self._memory_put(identity, data)
                self.stats.hits_redis += 1
                return "hit-redis", chunks
        self.stats.misses += 1
        return None

    def put(self, identity: str, chunks: Sequence[Mapping[str, Any]]) -> None:
        data = _COMPACT.encode(chunks)
        self._memory_put(identity, data)
        self._redis_put(identity, data)
        self.stats.stores += 1

    def clear(self) -> None:
        """Empty the first level (Redis entries expire by their TTL or a ``FLUSHDB``)."""
        with self._lock:
            self._memory.clear()

    # --- first level --------------------------------------------------------------------

    def _memory_get(self, identity: str) -> str | None:
        with self._lock:
            entry = self._memory.get(identity)
            if entry is None:
                return None
            expires, data = entry
            if expires and expires < time.monotonic():
                del self._memory[identity]
                return None
            self._memory.move_to_end(identity)
            return data

    def _memory_put(self, identity: str, data: str) -> None:
        if self.memory_size <= 0:
            return
        expires = time.monotonic() + self.ttl_s if self.ttl_s else 0.0
        with self._lock:
            self._memory[identity] = (expires, data)
            self._memory.move_to_end(identity)
            while len(self._memory) > self.memory_size:
                self._memory.popitem(last=False)

    # --- second level -------------------------------------------------------------------

    def _usable_redis(self) -> RedisLike | None:
        """The Redis client, unless there is none or it is resting after a failure."""
        if self.redis is None or time.monotonic() < self._redis_down_until:
            return None
        return self.redis

    def _redis_get(self, identity: str) -> Any:
        redis = self._usable_redis()
        if redis is None:
            return None
        try:
            return redis.get(self.redis_key(identity))
        except Exception as exc:  # redis-py raises its own tree; any failure means "down"
            self._redis_failed(exc)
            return None

    def _read(self, identity: str, value: Any) -> tuple[str, Chunks] | None:
        """A Redis value as ``(text, chunks)``, if it is an entry this cache would write."""
        problem = None
        try:
            data = value.decode() if isinstance(value, bytes) else value
            if not isinstance(data, str):
                raise TypeError
            chunks, end = _decode(data)
            if end != len(data):
                raise ValueError
        except UnicodeDecodeError:
            problem = "it is not UTF-8"
        except (TypeError, ValueError):
            problem = "it is not JSON"
        else:
            problem = _shape_problem(chunks)
        if problem is None:
            return data, chunks
        self.stats.bad_entries += 1
        if self.stats.bad_entries == 1:
            log.warning(
                "the LLM response cache found an entry it did not write at %s in %s (%s: %r); "
                "it is a miss, and the fresh answer replaces it. If another program writes "
                "under this prefix, give the suite its own: --llm-cache-namespace NAME. "
                "Later such entries are counted, not logged",
                self.redis_key(identity),
                self.redis_name,
                problem,
                value[:60] if isinstance(value, (bytes, str)) else value,
            )
        return None

    def _redis_put(self, identity: str, data: str) -> None:
        redis = self._usable_redis()
        if redis is None:
            return
        ttl_ms = int(self.ttl_s * 1000) if self.ttl_s else None
        try:
            redis.set(self.redis_key(identity), data.encode(), px=ttl_ms)
        except Exception as exc:
            self._redis_failed(exc)

    def _redis_failed(self, exc: Exception) -> None:
        first = self.stats.redis_errors == 0
        self.stats.redis_errors += 1
        self.stats.redis_error = f"{type(exc).__name__}: {exc}"
        self._redis_down_until = time.monotonic() + self.retry_after_s
        if first:
            log.warning(
                "the LLM response cache cannot reach %s (%s); calls go on with the in-process "
                "cache only, and Redis is tried again every %g s. Start Redis, fix the URL "
                "(--llm-cache redis://HOST:PORT/DB), or use --llm-cache memory",
                self.redis_name,
                self.stats.redis_error,
                self.retry_after_s,
            )


def _shape_problem(value: Any) -> str | None:
    """What makes ``value`` other than the chunks of an answer, as :meth:`put` stores them."""
    if not isinstance(value, list) or not value:
        return "it is not a list of chunks"
    if not all(type(chunk) is dict for chunk in value):
        return "a chunk is not a JSON object"
    last = value[-1]
    if last.get("done") is not True and "embeddings" not in last:
        return "its last chunk is not a final one (done: true)"
    if any(chunk.get("done") for chunk in value[:-1]):
        return "a chunk before the last is marked done"
    return None
