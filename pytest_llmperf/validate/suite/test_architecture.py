"""Architecture: the server answers, says its version, has each tier's model, and its API
answers in the shapes clients expect."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from pytest_llmperf.client.tiers import ORDER
from pytest_llmperf.validate.suite.conftest import Measured, Target

SHORT = {"num_predict": 4, "seed": 1, "temperature": 0}


def test_server_answers(target: Target, measured: Measured) -> None:
    """The server answers on every host"""
    answers = {}
    for host in target.hosts:
        try:
            answer = httpx.get(host + "/", timeout=10)
        except httpx.HTTPError as exc:
            pytest.fail(f"{host} does not answer ({exc}): is the server running there?")
        answers[host] = answer.status_code
        assert answer.status_code == 200, f"{host}/ answered {answer.status_code}"
    measured.record(hosts=answers)


def test_server_version(http: httpx.Client, measured: Measured) -> None:
    """The server says its version"""
    answer = http.get("/api/version")
    assert answer.status_code == 200, f"/api/version answered {answer.status_code}"
    version = answer.json().get("version")
    assert isinstance(version, str), f"/api/version gave no version: {answer.text[:200]}"
    assert re.match(r"^\d+\.\d+", version), f"/api/version gave {version!r}"
    measured.record(version=version)


@pytest.mark.parametrize("tier", ORDER)
def test_tier_model_exists(tier: str, target: Target, measured: Measured) -> None:
    """Each tier's model is on the server"""
    model = target.model(tier)
    measured.record(tier=tier, model=model)
    if not target.has(model):
        listed = ", ".join(sorted(target.models)) or "none"
        pytest.fail(
            f"the {tier} tier's model {model} is not on {target.url} (it has: {listed}): "
            f"pull it with `ollama pull {model}`, or validate another model with "
            f"--tier {tier}=MODEL",
            pytrace=False,
        )


def _keys(answer: httpx.Response, route: str, *wanted: str) -> dict[str, Any]:
    assert answer.status_code == 200, f"{route} answered {answer.status_code}: {answer.text[:200]}"
    body: dict[str, Any] = answer.json()
    missing = [key for key in wanted if key not in body]
    assert not missing, f"{route}'s answer lacks {missing}: {sorted(body)}"
    return body


def test_api_shapes(http: httpx.Client, target: Target) -> None:
    """Generate, chat and embed answer in Ollama's shapes"""
    target.need("fast")
    model = target.model("fast")
    body = {"model": model, "prompt": "Say hi.", "stream": False, "options": SHORT}
    generated = _keys(
        http.post("/api/generate", json=body),
        "/api/generate",
        "model",
        "response",
        "done",
        "total_duration",
        "eval_count",
    )
    assert isinstance(generated["response"], str) and generated["done"] is True
    messages = [{"role": "user", "content": "Say hi."}]
    chat = {"model": model, "messages": messages, "stream": False, "options": SHORT}
    chatted = _keys(http.post("/api/chat", json=chat), "/api/chat", "model", "message", "done")
    assert chatted["message"].get("role") == "assistant", chatted["message"]
    embedded = _keys(
        http.post("/api/embed", json={"model": model, "input": ["a", "b"]}),
        "/api/embed",
        "embeddings",
    )
    vectors = embedded["embeddings"]
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 0


def test_openai_routes(http: httpx.Client, target: Target, measured: Measured) -> None:
    """The OpenAI-compatible /v1 routes answer in OpenAI's shapes, where offered"""
    listed = http.get("/v1/models")
    if listed.status_code == 404:
        pytest.skip("the server offers no /v1 routes")
    target.need("fast")
    models = _keys(listed, "/v1/models", "data")["data"]
    assert isinstance(models, list)
    body = {
        "model": target.model("fast"),
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 4,
        "seed": 1,
    }
    answer = _keys(
        http.post("/v1/chat/completions", json=body), "/v1/chat/completions", "choices", "usage"
    )
    assert answer["choices"][0]["message"]["role"] == "assistant"
    measured.record(v1_models=len(models))
