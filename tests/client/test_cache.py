"""The two-level response cache: LRU bounds, TTL, fakeredis, a real Redis, Redis down."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time

import pytest

from pytest_llmperf import EmulatorServer, OllamaClient, Recorder, ResponseCache
from pytest_llmperf.client.cache import open_redis

CHUNKS = [{"response": "hi", "done": True}]


def test_memory_level_is_a_bounded_lru() -> None:
    cache = ResponseCache(memory_size=2)
    for name in ("a", "b"):
        cache.put(name, CHUNKS)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", CHUNKS)
    assert cache.get("b") is None
    assert cache.get("a") == ("hit-memory", CHUNKS)
    assert (cache.stats.hits, cache.stats.misses, cache.stats.stores) == (2, 1, 3)


def test_entries_expire_after_their_ttl() -> None:
    cache = ResponseCache(ttl_s=0.05)
    cache.put("k", CHUNKS)
    assert cache.get("k") is not None
    time.sleep(0.1)
    assert cache.get("k") is None


def test_a_hit_returns_fresh_objects() -> None:
    cache = ResponseCache()
    cache.put("k", CHUNKS)
    _, chunks = cache.get("k")  # type: ignore[misc]
    chunks[0]["response"] = "changed"
    assert cache.get("k") == ("hit-memory", CHUNKS)


def test_the_second_level_serves_what_the_first_forgot() -> None:
    cache = ResponseCache(open_redis("fakeredis"), memory_size=0, namespace="suite-a")
    cache.put("k", CHUNKS)
    assert cache.get("k") == ("hit-redis", CHUNKS)
    other = ResponseCache(cache.redis, memory_size=0, namespace="suite-b")
    assert other.get("k") is None


def test_redis_down_warns_once_and_the_calls_go_on(
    live: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResponseCache(open_redis("redis://127.0.0.1:9/0"), redis_name="redis://127.0.0.1:9/0")
    client = OllamaClient(live.url, cache=cache)
    with caplog.at_level(logging.WARNING, logger="pytest_llmperf.client.cache"):
        answers = [client.generate("llama3.2:1b", "hi", options={"seed": 1}) for _ in range(3)]
    client.close()
    assert answers[0] == answers[1] == answers[2]
    [warning] = caplog.records
    assert "cannot reach redis://127.0.0.1:9/0" in warning.getMessage()
    assert "--llm-cache memory" in warning.getMessage()
    assert cache.stats.redis_errors == 1  # then Redis is left alone until retry_after_s
    assert (cache.stats.misses, cache.stats.hits_memory) == (1, 2)


def test_a_bad_cache_url_is_refused() -> None:
    from pytest_llmperf import ConfigurationError

    with pytest.raises(ConfigurationError, match="give memory, off, or a redis://"):
        open_redis("http://localhost:6379")


SECOND_PROCESS = """
import json, sys
from pytest_llmperf import OllamaClient, Recorder, ResponseCache
from pytest_llmperf.client.cache import open_redis
recorder = Recorder()
cache = ResponseCache(open_redis(sys.argv[2]))
with OllamaClient(sys.argv[1], cache=cache, on_record=recorder) as client:
    answer = client.generate("llama3.2:1b", "shared", options={"seed": 3})
print(json.dumps({"cache": recorder[0].cache, "response": answer["response"]}))
"""


def test_a_second_process_gets_a_hit_from_a_real_redis(
    live: EmulatorServer, redis_url: str
) -> None:
    def run() -> dict[str, str]:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(SECOND_PROCESS), live.url, redis_url],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    first = run()
    served = live.app.engine.requests_served
    second = run()
    assert live.app.engine.requests_served == served
    assert (first["cache"], second["cache"]) == ("miss", "hit-redis")
    assert second["response"] == first["response"]


def test_records_say_which_level_answered(live: EmulatorServer) -> None:
    recorder = Recorder()
    shared = open_redis("fakeredis")
    for _ in range(2):
        with OllamaClient(live.url, cache=ResponseCache(shared), on_record=recorder) as client:
            client.embed("llama3.2:1b", "text")
            client.embed("llama3.2:1b", "text")
    assert [r.cache for r in recorder] == ["miss", "hit-memory", "hit-redis", "hit-memory"]


@pytest.fixture(params=["fakeredis", "redis-server"])
def store_url(request: pytest.FixtureRequest) -> str:
    """fakeredis, then a real redis-server (of this run)."""
    if request.param == "fakeredis":
        return "fakeredis"
    return request.getfixturevalue("redis_url")  # type: ignore[no-any-return]


FOREIGN = {
    "not UTF-8": b"\xff\xfe[{",
    "not JSON": b"cached answer",
    "JSON with more after it": b'[{"response":"x","done":true}] and more',
    "an object": b'{"response":"forged","done":true}',
    "an empty list": b"[]",
    "a list of numbers": b"[1,2]",
    "no final chunk": b'[{"response":"forged","done":false}]',
    "done too early": b'[{"response":"","done":true},{"response":"forged","done":false}]',
}


@pytest.mark.parametrize("value", FOREIGN.values(), ids=FOREIGN.keys())
def test_an_entry_the_cache_did_not_write_is_a_miss_logged_once_and_replaced(
    live: EmulatorServer, store_url: str, value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_redis(store_url)
    namespace = f"foreign-{time.monotonic_ns()}"
    cache = ResponseCache(store, memory_size=0, namespace=namespace, redis_name=store_url)
    recorder = Recorder()
    with OllamaClient(live.url, cache=cache, on_record=recorder) as client:

        def call() -> list[str]:
            chunks = client.generate("llama3.2:1b", "hi", stream=True, options={"seed": 5})
            return [chunk["response"] for chunk in chunks]

        fresh = call()
        [key] = [k.decode() for k in store.keys(f"{namespace}:*")]  # type: ignore[attr-defined]
        with caplog.at_level(logging.WARNING, logger="pytest_llmperf.client.cache"):
            for _ in range(2):  # the second time, counted and not logged
                store.set(key, value)
                assert call() == fresh
                assert json.loads(store.get(key))[-1]["done"] is True  # the fresh answer
    assert [r.cache for r in recorder] == ["miss", "miss", "miss"]
    assert cache.stats.bad_entries == 2
    [warning] = caplog.records
    assert warning.getMessage().startswith(
        f"the LLM response cache found an entry it did not write at {key} in {store_url} ("
    )
    assert "it is a miss, and the fresh answer replaces it" in warning.getMessage()
    assert live.app.engine.requests_served == 3  # none was served from the foreign entry
