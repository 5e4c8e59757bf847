"""Replay timing and timeouts, matching, record modes and secrets, on the session directly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from paced_model import MODEL

from pytest_llmperf import EmulatorServer, Limits, LLMTimeoutError, OllamaClient
from pytest_llmperf.observe.cassettes import (
    Cassette,
    CassetteError,
    CassetteMismatchError,
    CassetteSession,
    patched,
)


def record(path: Path, url: str, mode: str = "once", **call: object) -> CassetteSession:
    with patched(CassetteSession(path, mode)) as session, OllamaClient(url, cache=None) as client:
        list(client.generate(MODEL, "hi", stream=True, **call))  # type: ignore[call-overload]
    session.save(passed=True)
    return session


def test_a_recorded_stall_trips_the_stall_limit_on_replay(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    with OllamaClient(paced.url, headers={"X-Llmperf-Fault": "stall; after=3; seconds=0.6"}) as c:
        with patched(CassetteSession(cassette_path, "once")) as session:
            list(c.generate(MODEL, "hi", stream=True, timeout=Limits(10, 10, 5)))
        session.save(passed=True)
    paced.stop()
    strict = Limits(total=10, first_token=10, stall=0.3)
    with (
        patched(CassetteSession(cassette_path, "none", timing=1.0)),
        OllamaClient(paced.url) as client,
    ):
        with pytest.raises(LLMTimeoutError) as caught:
            list(client.generate(MODEL, "hi", stream=True, timeout=strict))
        assert caught.value.phase == "stall"
    with (
        patched(CassetteSession(cassette_path, "none", timing=0.0)),
        OllamaClient(paced.url) as client,
    ):
        chunks = list(client.generate(MODEL, "hi", stream=True, timeout=strict))
        assert chunks[-1]["done"]


def test_replay_matches_json_ignoring_keep_alive_and_key_order(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    record(cassette_path, paced.url, options={"seed": 1, "temperature": 0})
    paced.stop()
    body = {
        "options": {"temperature": 0, "seed": 1},
        "prompt": "hi",
        "keep_alive": "1h",
        "model": MODEL,
    }
    with (
        patched(CassetteSession(cassette_path, "none")),
        httpx.stream("POST", paced.url + "/api/generate", json=body) as response,
    ):
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines[-1]["done"]


def test_identical_requests_replay_in_recorded_order(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    body = {"model": MODEL, "prompt": "same", "stream": False}
    with patched(CassetteSession(cassette_path, "once")) as session:
        first = [httpx.post(paced.url + "/api/generate", json=body).json() for _ in range(2)]
    session.save(passed=True)
    assert first[0]["created_at"] != first[1]["created_at"]
    with patched(CassetteSession(cassette_path, "none")):
        again = [httpx.post(paced.url + "/api/generate", json=body).json() for _ in range(2)]
        with pytest.raises(CassetteMismatchError, match="every recorded answer to it has been"):
            httpx.post(paced.url + "/api/generate", json=body)
    assert again == first


def test_an_unmatched_request_names_the_cassette_the_closest_and_the_way_out(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    record(cassette_path, paced.url)
    with (
        patched(CassetteSession(cassette_path, "none")),
        OllamaClient(paced.url) as client,
        pytest.raises(CassetteMismatchError) as caught,
    ):
        list(client.generate(MODEL, "hello", stream=True, options={"num_predict": 3}))
    message = str(caught.value)
    assert f"no recorded answer in cassette {cassette_path}" in message
    assert 'prompt: recorded "hi" != requested "hello"' in message
    assert 'options: requested {"num_predict": 3}, not recorded' in message
    assert "--llm-record-mode new_episodes" in message


def test_none_mode_never_reaches_the_network(cassette_path: Path) -> None:
    # a listening server would answer; the cassette layer must refuse before connecting
    with (
        patched(CassetteSession(cassette_path, "none")),
        pytest.raises(CassetteMismatchError, match="has no requests with this method"),
    ):
        httpx.get("http://127.0.0.1:9/api/tags")


def test_once_records_a_missing_cassette_then_only_replays(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    assert len(record(cassette_path, paced.url).recorded) == 1
    session = CassetteSession(cassette_path, "once")
    assert (session.mode, session.records) == ("none", False)


def test_new_episodes_adds_and_all_starts_over(paced: EmulatorServer, cassette_path: Path) -> None:
    record(cassette_path, paced.url)
    with patched(CassetteSession(cassette_path, "new_episodes")) as session:
        for prompt in ("hi", "new"):
            httpx.post(paced.url + "/api/generate", json={"model": MODEL, "prompt": prompt})
    session.save(passed=True)
    assert (len(session.replayed), len(session.recorded)) == (1, 1)
    assert len(Cassette.load(cassette_path).interactions) == 2
    with patched(CassetteSession(cassette_path, "all")) as session:
        httpx.post(paced.url + "/api/generate", json={"model": MODEL, "prompt": "hi"})
    session.save(passed=True)
    assert (len(session.replayed), len(Cassette.load(cassette_path).interactions)) == (0, 1)


def test_rewrite_with_the_server_down_keeps_the_old_cassette(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    record(cassette_path, paced.url)
    before = cassette_path.read_bytes()
    paced.stop()
    with (
        patched(CassetteSession(cassette_path, "rewrite")) as session,
        pytest.raises(httpx.ConnectError),
    ):
        httpx.post(paced.url + "/api/generate", json={"model": MODEL, "prompt": "hi"})
    session.save(passed=False)
    assert cassette_path.read_bytes() == before


def test_a_corrupt_cassette_is_a_clear_error_and_stays_as_it_is(cassette_path: Path) -> None:
    cassette_path.parent.mkdir(parents=True)
    cassette_path.write_text("interactions: [{request: \n", encoding="utf-8")
    with pytest.raises(
        CassetteError, match=r"(?s)cannot read cassette .*: ParserError.*fix or delete it"
    ):
        CassetteSession(cassette_path, "none")
    assert cassette_path.read_text(encoding="utf-8") == "interactions: [{request: \n"


SECRETS = ("sk-secret-token-123", "cookie-value-456", "query-key-789", "set-cookie-abc")


def test_secrets_never_reach_the_cassette(
    serve: Callable[..., EmulatorServer], paced: EmulatorServer, cassette_path: Path
) -> None:
    with patched(CassetteSession(cassette_path, "once")) as session:
        httpx.post(
            paced.url + f"/api/generate?api_key={SECRETS[2]}&x=1",
            headers={"Authorization": f"Bearer {SECRETS[0]}", "Cookie": f"s={SECRETS[1]}"},
            json={"model": MODEL, "prompt": "hi", "stream": False},
        )
    session.save(passed=True)
    written = cassette_path.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in written
    assert b"SCRUBBED" in written and b"x=1" in written


def test_vcrpy_reads_our_cassettes(paced: EmulatorServer, cassette_path: Path) -> None:
    import vcr.serialize
    from vcr.serializers import yamlserializer

    record(cassette_path, paced.url)
    requests, responses = vcr.serialize.deserialize(
        cassette_path.read_text(encoding="utf-8"), yamlserializer
    )
    assert requests[0].path == "/api/generate"
    assert responses[0]["status"]["code"] == 200
    assert b'"done":true' in responses[0]["body"]["string"]
    assert responses[0]["llmperf"]["chunks"]


def test_json_cassettes_round_trip(paced: EmulatorServer, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    record(path, paced.url)
    loaded = Cassette.load(path).interactions[0]
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == 1
    assert loaded.stats and loaded.stats["eval_count"] == 8
    assert len(loaded.chunks) >= 2
