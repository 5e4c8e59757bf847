"""Clients on other HTTP libraries go through vcrpy's patches, beside our cassette."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from paced_model import MODEL
from vcr.errors import CannotOverwriteExistingCassetteException

from pytest_llmperf import EmulatorServer
from pytest_llmperf.observe.cassettes import CassetteSession, patched
from pytest_llmperf.observe.cassettes.session import foreign_supported

pytestmark = pytest.mark.skipif(
    not foreign_supported(),
    reason="vcrpy < 9.4.2 (Python 3.10) cannot leave httpx alone: other libraries not covered",
)


def ask(url: str, secret: str = "") -> dict[str, object]:
    request = urllib.request.Request(
        url + "/api/generate?api_key=" + (secret or "none"),
        data=json.dumps({"model": MODEL, "prompt": "hi", "stream": False}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_urllib_records_and_replays_through_vcrpy(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    secret = "sk-urllib-secret-42"
    with patched(CassetteSession(cassette_path, "once")) as session:
        live = ask(paced.url, secret)
    session.save(passed=True)
    paced.stop()
    assert session.foreign_path.is_file()
    assert secret.encode() not in session.foreign_path.read_bytes()
    with patched(CassetteSession(cassette_path, "none")):
        assert ask(paced.url, secret) == live


def test_urllib_in_replay_mode_never_reaches_the_network(cassette_path: Path) -> None:
    with (
        patched(CassetteSession(cassette_path, "none")),
        pytest.raises(CannotOverwriteExistingCassetteException),
    ):
        ask("http://127.0.0.1:9")


def test_a_failed_rewrite_keeps_the_old_vcrpy_cassette(
    paced: EmulatorServer, cassette_path: Path
) -> None:
    with patched(CassetteSession(cassette_path, "once")) as session:
        ask(paced.url)
    session.save(passed=True)
    before = session.foreign_path.read_bytes()
    with patched(CassetteSession(cassette_path, "rewrite")) as rewriting:
        ask(paced.url)
    rewriting.save(passed=False)
    assert rewriting.foreign_path.read_bytes() == before
    assert not list(cassette_path.parent.glob(".*.rewrite"))
