"""The report's server section: built from /api/ps and /api/show, read by the rules on
GPU memory and quantization, and shown on the emulator."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jsonschema
import pytest

from pytest_llmperf.emulator import Catalogue, EmulatorApp
from pytest_llmperf.emulator.profiles import ModelProfile
from pytest_llmperf.judge.recommend import recommend
from pytest_llmperf.observe.server import billions, bits, from_api
from pytest_llmperf.report.document import Collector, build, schema

PS = {
    "models": [
        {
            "name": "llama3:8b",
            "size": 5_000,
            "size_vram": 2_000,
            "details": {"quantization_level": "Q4_0", "parameter_size": "8.0B"},
            "expires_at": "2024-06-04T14:38:31.83753-07:00",
        },
        {"name": "llama3.2:1b", "size": 1_000, "size_vram": 1_000},
        {"size": 1},  # no name: left out
    ]
}
SHOW = {"llama3.2:1b": {"details": {"quantization_level": "F16", "parameter_size": "1.2B"}}}


def loaded(name: str, size: int = 1000, vram: int = 1000, **details: Any) -> dict[str, Any]:
    return {"name": name, "size": size, "size_vram": vram, **details}


def call(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "purpose": "call",
        "outcome": "ok",
        "cache": "miss",
        "cache_hit": False,
        "timing": "live",
        "total_s": 2.0,
        "server": {},
        **extra,
    }


def entry(*calls: dict[str, Any], violations: Any = ()) -> dict[str, Any]:
    return {"nodeid": "t::a", "calls": list(calls), "violations": list(violations)}


def test_the_section_from_the_servers_answers() -> None:
    assert from_api(PS, SHOW, num_parallel=4) == {
        "num_parallel": 4,
        "models": [
            loaded("llama3:8b", 5_000, 2_000, quantization_level="Q4_0", parameter_size="8.0B"),
            loaded("llama3.2:1b", quantization_level="F16", parameter_size="1.2B"),
        ],
    }
    assert from_api({"models": []}) == {"num_parallel": None, "models": []}
    odd = from_api({"models": [{"name": "x", "size": "big", "size_vram": True}]})
    assert odd["models"] == [
        {
            "name": "x",
            "size": None,
            "size_vram": None,
            "quantization_level": None,
            "parameter_size": None,
        }
    ]


@pytest.mark.parametrize(
    ("size", "expected"),
    [("8.0B", 8.0), ("70B", 70.0), ("567M", 0.567), ("1.2b", 1.2), ("unknown", None), (None, None)],
)
def test_parameter_sizes_in_billions(size: str | None, expected: float | None) -> None:
    assert billions(size) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("level", "expected"),
    [("F32", 32), ("F16", 16), ("BF16", 16), ("Q8_0", 8), ("Q4_K_M", 4), ("IQ2_XS", 2)],
)
def test_bits_per_weight(level: str, expected: int) -> None:
    assert bits(level) == expected
    assert bits("unknown") is None and bits(None) is None


def test_a_model_partly_outside_gpu_memory() -> None:
    server = {"models": [loaded("llama3:8b", 4000, 1000)]}
    [gpu] = recommend([entry(call("llama3:8b"))], server=server)
    assert (gpu["id"], gpu["severity"]) == ("gpu-offload", "warning")
    assert gpu["message"].startswith(
        "llama3:8b has only 25% of itself in GPU memory; the rest runs on the CPU (/api/ps: "
        "size_vram 1000 of 4000 bytes), which slows every token"
    )
    assert gpu["evidence"] == {
        "model": "llama3:8b",
        "size": 4000,
        "size_vram": 1000,
        "gpu_share": 0.25,
        "calls": 1,
        "seconds": 2.0,
    }
    [cpu] = recommend([], server={"models": [loaded("m", 4000, 0)]})
    assert cpu["message"].startswith("m runs entirely on the CPU")


def test_models_all_in_gpu_memory_or_no_section_say_nothing() -> None:
    assert recommend([entry(call("m"))], server={"models": [loaded("m")]}) == []
    assert recommend([entry(call("m"))]) == []


def test_an_unquantized_model_that_was_slow() -> None:
    server = {"models": [loaded("m", quantization_level="F16", parameter_size="3.2B")]}
    slow = entry(call("m", tokens_per_s=4.0), call("m", tokens_per_s=6.0))
    [quant] = recommend([slow], server=server)
    assert (quant["id"], quant["severity"]) == ("quantization", "warning")
    assert quant["message"].startswith(
        "m runs at F16 (3.2B) and was slow here (5 tokens/s): a 4-bit quantization"
    )
    assert quant["evidence"]["slow"] == ["5 tokens/s"]
    fast = entry(call("m", tokens_per_s=40.0))
    assert recommend([fast], server=server) == []
    assert recommend([], server=server) == []  # not used in this run: no evidence of speed
    four_bit = {"models": [loaded("m", quantization_level="Q4_K_M", parameter_size="3.2B")]}
    assert recommend([slow], server=four_bit) == []


def test_a_large_model_at_eight_bits_that_timed_out_or_went_past_budgets() -> None:
    server = {"models": [loaded("big", quantization_level="Q8_0", parameter_size="70B")]}
    timed_out = entry(call("big", outcome="timeout", tokens_per_s=None))
    found = [item for item in recommend([timed_out], server=server) if item["id"] == "quantization"]
    assert [item["evidence"]["slow"] for item in found] == [["calls timed out"]]
    over = entry(call("big"), violations=[{"budget": "total", "model": "big", "call": 1}])
    found = [item for item in recommend([over], server=server) if item["id"] == "quantization"]
    assert [item["evidence"]["slow"] for item in found] == [["calls went past their budgets"]]
    small = {"models": [loaded("big", quantization_level="Q8_0", parameter_size="3B")]}
    assert [i["id"] for i in recommend([timed_out], server=small)] == ["call-failures"]


def test_the_report_carries_the_section_and_whether_ci_was_set() -> None:
    collector = Collector()
    collector.add("t::a", "call", "passed", 0.1, None)
    section = from_api(PS, SHOW, num_parallel=2)
    now = time.time()
    data = build(collector, {}, now, now, server=section, environ={"CI": "true"})
    jsonschema.validate(data, schema())
    assert data["server"] == section and data["run"]["ci"] is True
    assert [item["id"] for item in data["recommendations"]] == ["gpu-offload"]
    plain = build(collector, {}, now, now, environ={"CI": "false"})
    jsonschema.validate(plain, schema())
    assert "server" not in plain and plain["run"]["ci"] is False


async def test_the_emulator_shows_what_the_rules_need(catalogue: Catalogue) -> None:
    # a 70B model at F16, three quarters of it outside GPU memory, writing 4 tokens/s after the first
    offloaded = ModelProfile(
        name="big:70b",
        parameter_size="70B",
        quantization_level="F16",
        size=8000,
        size_vram=2000,
        load_s=0.0,
        first_token_s=0.0,
        tokens_per_s=4.0,
    )
    slow_server = catalogue.with_model(offloaded).with_server(time_scale=1.0, num_parallel=4)
    app = EmulatorApp(slow_server)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://e"
    ) as client:
        body = {"model": "big:70b", "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
        answer = (await client.post("/api/generate", json=body)).json()
        ps = (await client.get("/api/ps")).json()
        shows = {
            m["name"]: (await client.post("/api/show", json={"model": m["name"]})).json()
            for m in ps["models"]
        }
    section = from_api(ps, shows, num_parallel=slow_server.server.num_parallel)
    assert section == {
        "num_parallel": 4,
        "models": [loaded("big:70b", 8000, 2000, quantization_level="F16", parameter_size="70B")],
    }
    speed = answer["eval_count"] / answer["eval_duration"] * 1e9
    ids = [
        item["id"]
        for item in recommend([entry(call("big:70b", tokens_per_s=speed))], server=section)
    ]
    assert ids == ["gpu-offload", "quantization"]
