"""Under pytest-xdist, a suite of 2,000 tests that each call the LLM keeps every record, once.

The tests call one emulator on a loopback port (not each worker's embedded one), so the
server's own count of the calls it answered is there to check the report against.
``LLMPERF_XDIST_WORKERS`` sets the number of workers (8 by default, as the README's figure).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator

import jsonschema
import pytest

from pytest_llmperf.emulator import EmulatorApp, EmulatorServer
from pytest_llmperf.emulator.profiles import Catalogue
from pytest_llmperf.report.document import schema

TESTS = 2000
WORKERS = os.environ.get("LLMPERF_XDIST_WORKERS", "8")

SUITE = """
import pytest

@pytest.mark.parametrize("n", range({tests}))
def test_call(ollama_client, n):
    assert ollama_client.generate(tier="fast", prompt=f"question {{n}}", options={{"num_predict": 2}})
"""


@pytest.fixture
def server(catalogue: Catalogue) -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorApp(catalogue.with_server(time_scale=0.01))) as running:
        yield running


def test_2000_tests_under_xdist_give_2000_tests_records_and_every_call_once(
    pytester: pytest.Pytester, server: EmulatorServer
) -> None:
    pytester.makepyfile(test_many=SUITE.format(tests=TESTS))
    # (in a subprocess: this process's threads then serve the emulator alone; fixed limits far
    # from the calls' few milliseconds, not adapted ones, for a loaded machine: this test
    # counts records)
    result = pytester.runpytest_subprocess(
        "-n",
        WORKERS,
        "--llm-host",
        server.url,
        "--llm-retries",
        "0",
        "--llm-adaptive-timeouts",
        "off",
        "--llm-timeout",
        "fast: total=120 first_token=120 stall=120 connect=60",
        "--llm-report",
        "report.json",
        "-p",
        "no:cacheprovider",
        "-q",
    )
    result.assert_outcomes(passed=TESTS)
    data = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    ids = Counter(test["nodeid"] for test in data["tests"])
    assert len(ids) == TESTS and set(ids.values()) == {1}, "a test's record lost or repeated"
    assert ids.keys() == {f"test_many.py::test_call[{n}]" for n in range(TESTS)}
    calls = [call for test in data["tests"] for call in test["calls"]]
    assert {len(test["calls"]) for test in data["tests"]} == {1}
    assert len({call["request_digest"] for call in calls}) == TESTS  # each prompt's own call
    assert data["summary"]["tests"] == data["summary"]["passed"] == TESTS
    assert data["summary"]["calls"] == TESTS
    assert {c["outcome"] for c in calls} == {"ok"}
    # the server answered exactly the calls the report holds: none made twice, none missing
    assert server.app.engine.requests_served == TESTS
