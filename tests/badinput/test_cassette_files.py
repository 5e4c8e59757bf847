"""Cassette files that are corrupt, cut short, empty, foreign or of the wrong shape, in YAML
and JSON; and cassettes written by plain vcrpy, which must replay.

Every bad file is a :class:`CassetteError` whose message names the file and what is wrong
(the field, or the line and column), and the file is left byte for byte as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr

from pytest_llmperf.emulator import EmulatorServer
from pytest_llmperf.observe.cassettes import CassetteError, CassetteSession, patched

FIX = "It is left as it is; fix or delete it, or record it again with --llm-record-mode rewrite"

GOOD = {
    "request": {"method": "POST", "uri": "http://h/api/generate", "body": "{}", "headers": {}},
    "response": {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Type": ["application/json"]},
        "body": {"string": '{"response": "hi", "done": true}'},
        "llmperf": {"headers_at": 0.01, "chunks": [[0.01, 32]]},
    },
}


def cassette(interaction: Any) -> str:
    return json.dumps({"version": 1, "interactions": [interaction]})


def changed(path: str, value: Any) -> dict[str, Any]:
    """GOOD with the field at ``path`` (dotted) set to ``value`` (``...`` deletes it)."""
    data = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    table = data
    for name in parents:
        table = table[name]
    if value is ...:
        del table[last]
    else:
        table[last] = value
    return data


# (file content, what the message says after the path)
WHOLE_FILES = {
    "empty": ("", "it is empty (a write cut short, or a file made by hand?)"),
    "blank": ("\n  \n", "it is empty (a write cut short, or a file made by hand?)"),
    "not-utf8": ("\udcff", "it is not UTF-8 text (byte 0xff at offset 0)"),
    "a-list": ("[1, 2]\n", "it is not a cassette: it needs an 'interactions' list"),
    "a-number": ("42\n", "it is not a cassette: it needs an 'interactions' list"),
    "null": ("null\n", "it is not a cassette: it needs an 'interactions' list"),
    "no-interactions": ('{"version": 1}\n', "it is not a cassette: it needs an 'interactions'"),
    "interactions-not-a-list": (
        '{"version": 1, "interactions": {"a": 1}}\n',
        "it is not a cassette: it needs an 'interactions' list",
    ),
    "foreign-json": (
        '{"name": "package.json", "dependencies": {}}\n',
        "it is not a cassette: it needs an 'interactions' list",
    ),
    "deep": ("[" * 100_000, "it is not valid"),
}
JSON_ONLY = {
    "truncated": (cassette(GOOD)[:60], "it is not valid JSON (line 1, column "),
    "trailing-garbage": (cassette(GOOD) + "}", "it is not valid JSON (line 1, column"),
}
YAML_ONLY = {
    "truncated": (
        "interactions:\n- request: {method: POST\n",
        "it is not valid YAML (line 3, column 1",
    ),
    "foreign-yaml": ("name: ci\non: [push]\n", "it is not a cassette: it needs an 'interactions'"),
    "tab-indented": ("interactions:\n\t- x\n", "it is not valid YAML (line 2, column 1"),
}
CASES = [
    (f"{name}{suffix}", text, message)
    for suffix, extra in ((".yaml", YAML_ONLY), (".json", JSON_ONLY))
    for name, (text, message) in {**WHOLE_FILES, **extra}.items()
]


@pytest.mark.parametrize(("name", "text", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_cassette_file_is_named_with_what_is_wrong_and_left_as_it_is(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    before = path.read_bytes()
    with pytest.raises(CassetteError) as caught:
        CassetteSession(path, "none")
    shown = str(caught.value)
    assert shown.startswith(f"cannot read cassette {path}: {message}")
    assert shown.endswith(FIX)
    assert path.read_bytes() == before


FIELDS = [
    ("interaction", None, "interactions[0] is missing (it should be a mapping)"),
    ("request", ..., "interactions[0].request is missing (it should be a mapping)"),
    ("request", [1], "interactions[0].request is [1] (list), not a mapping"),
    ("request.method", ..., "interactions[0].request.method is missing (it should be text)"),
    ("request.method", 5, "interactions[0].request.method is 5 (int), not text"),
    ("request.uri", None, "interactions[0].request.uri is missing (it should be text)"),
    ("request.body", {"a": 1}, "interactions[0].request.body is {'a': 1} (dict), not text"),
    ("request.headers", "x", "interactions[0].request.headers is 'x' (str), not a mapping"),
    ("response", "ok", "interactions[0].response is 'ok' (str), not a mapping"),
    ("response.status", "200", "interactions[0].response.status is '200' (str), not a mapping"),
    (
        "response.status.code",
        "200",
        "interactions[0].response.status.code is '200' (str), not an HTTP status from 100 to 599",
    ),
    (
        "response.status.code",
        999,
        "interactions[0].response.status.code is 999 (int), not an HTTP status from 100 to 599",
    ),
    (
        "response.headers",
        {"A": {"b": 1}},
        "interactions[0].response.headers.A is {'b': 1} (dict), not a list of values",
    ),
    ("response.body", [], "interactions[0].response.body is [] (list), not a mapping"),
    ("response.body.string", 5, "interactions[0].response.body.string is 5 (int), not text"),
    ("response.llmperf", 1, "interactions[0].response.llmperf is 1 (int), not a mapping"),
    (
        "response.llmperf.headers_at",
        -1,
        "interactions[0].response.llmperf.headers_at is -1 (int), not seconds >= 0",
    ),
    (
        "response.llmperf.chunks",
        [1, 2],
        "interactions[0].response.llmperf.chunks[0] is 1 (int), not a [seconds, bytes] pair",
    ),
    (
        "response.llmperf.chunks",
        [[0.1, "x"]],
        "interactions[0].response.llmperf.chunks[0] is [0.1, 'x'] (list), not a [seconds, bytes] "
        "pair",
    ),
    (
        "response.llmperf.stats",
        [],
        "interactions[0].response.llmperf.stats is [] (list), not a mapping",
    ),
]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize(("field", "value", "message"), FIELDS, ids=[f[2][16:60] for f in FIELDS])
def test_a_field_of_the_wrong_shape_is_named(
    tmp_path: Path, suffix: str, field: str, value: Any, message: str
) -> None:
    path = tmp_path / f"shape{suffix}"
    interaction = value if field == "interaction" else changed(field, value)
    path.write_text(cassette(interaction), encoding="utf-8")
    with pytest.raises(CassetteError) as caught:
        CassetteSession(path, "none")
    assert str(caught.value) == f"cannot read cassette {path}: {message}. {FIX}"


@pytest.mark.parametrize("special", ["folder", "fifo"])
def test_a_cassette_that_is_not_a_regular_file_is_refused_without_blocking(
    tmp_path: Path, special: str
) -> None:
    import os

    path = tmp_path / "special.yaml"
    if special == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)  # reading it would wait for a writer for ever
    with pytest.raises(CassetteError) as caught:
        CassetteSession(path, "none")
    assert str(caught.value) == f"cannot read cassette {path}: it is not a regular file. {FIX}"


@pytest.mark.parametrize("serializer", ["yaml", "json"])
def test_a_cassette_written_by_plain_vcrpy_replays(
    live: EmulatorServer, tmp_path: Path, serializer: str
) -> None:
    path = tmp_path / f"vcrpy.{serializer}"
    request = {"model": "llama3.2:1b", "prompt": "hi", "stream": False}
    recorder = vcr.VCR(serializer=serializer, record_mode="once")
    with recorder.use_cassette(str(path)):
        recorded = httpx.post(live.url + "/api/generate", json=request, timeout=30).json()
    assert path.read_text(encoding="utf-8").strip()
    live.stop()  # replay must not need the server
    with patched(CassetteSession(path, "none")) as session:
        replayed = httpx.post(live.url + "/api/generate", json=request, timeout=30).json()
    assert replayed == recorded
    assert len(session.replayed) == 1
