"""The README's fixture example, verbatim (tests/test_readme.py checks that they match)."""

from __future__ import annotations

import socket

import httpx
import ollama
import pytest

import pytest_llmperf


def test_story_has_text(ollama_emulator):
    answer = httpx.post(
        ollama_emulator.url + "/api/generate",
        json={"model": "llama3.2:1b", "prompt": "Hi", "stream": False},
    ).json()
    assert answer["response"]


def test_answers_from_the_fast_tier(ollama_client, llm_calls):
    answer = ollama_client.generate(tier="fast", prompt="Name a colour.")
    assert answer.response
    [call] = llm_calls
    assert call.model == "llama3.2:1b" and call.outcome == "ok"


@pytest.mark.llm_settings(cache="off", tiers=["fast=llama3.2:3b"])
def test_one_test_with_its_own_settings(ollama_client, llm_calls):
    ollama_client.generate(tier="fast", prompt="Hi", options={"seed": 1})
    assert llm_calls[0].model == "llama3.2:3b" and llm_calls[0].cache == "off"


@pytest.mark.llm_settings(retries=0)
def test_reads_the_settings_its_marker_gives(llm_settings, llm_test_settings):
    assert llm_settings.retries == 2  # the run's
    assert llm_test_settings.retries == 0  # this test's


@pytest.mark.llm_cassette
def test_chat_replays_offline(ollama_client, llm_cassette):
    answer = ollama_client.chat(tier="fast", messages=[{"role": "user", "content": "Hi!"}])
    assert answer.message.content
    assert len(llm_cassette.replayed) + len(llm_cassette.recorded) == 1


@pytest.mark.llm_budget(total=5.0, ttft=2.0, calls=2)
def test_answers_within_budget(ollama_client):
    ollama_client.generate(tier="fast", prompt="One word for blue?")


@pytest.mark.llm_budget(p95=5.0, calls=1, runs=5)
def test_p95_over_five_runs(ollama_client):
    ollama_client.generate(tier="fast", prompt="One word for green?")


@pytest.mark.llm_budget(total=60, calls=1)
def test_my_app_on_the_official_client(ollama_emulator, llm_calls):
    with ollama.Client(host=ollama_emulator.url) as client:
        assert client.generate(model="llama3.2:1b", prompt="Why is the sky blue?").response
    [call] = llm_calls
    assert (call.source, call.route, call.outcome) == ("httpx", "/api/generate", "ok")


@pytest.mark.xfail(reason="a budget nobody meets: this is how a slow call fails", strict=True)
@pytest.mark.llm_budget(total=0.001)
def test_a_budget_the_official_client_cannot_meet(ollama_emulator):
    with ollama.Client(host=ollama_emulator.url) as client:
        client.generate(model="llama3.2:1b", prompt="Why is the sky blue?")


def test_nothing_but_the_emulator_is_reachable(llm_settings, ollama_client):
    assert ollama_client.generate(tier="fast", prompt="Hi").response  # the emulator: allowed
    if llm_settings.block_network:  # pytest --llm-block-network on
        with pytest.raises(pytest_llmperf.NetworkBlockedError, match="--llm-allowed-host"):
            socket.create_connection(("127.0.0.1", 9))
