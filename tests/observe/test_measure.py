"""One exchange measured from the bytes that pass: the logic alone, on made-up answers."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmperf.observe.measure import Exchange, Routes
from pytest_llmperf.observe.records import CallRecord, GapSummary
from pytest_llmperf.stats import quantile

GENERATE = ("/api/generate", "generate", "ollama")
CHAT_V1 = ("/v1/chat/completions", "chat", "openai")


def exchange(match: Any, body: dict[str, Any], got: list[CallRecord]) -> Exchange:
    return Exchange(match, "http://127.0.0.1:11434", json.dumps(body).encode(), got.append, "t")


def feed(ex: Exchange, parts: list[bytes], at: list[float]) -> None:
    for part, moment in zip(parts, at, strict=True):
        ex.arrived(part, ex.started + moment)


def line(**fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n"


FINAL = line(
    response="",
    done=True,
    total_duration=900_000_000,
    load_duration=500_000_000,
    prompt_eval_count=4,
    prompt_eval_duration=100_000_000,
    eval_count=3,
    eval_duration=250_000_000,
)


def test_routes_are_recognised_with_and_without_a_proxy_prefix() -> None:
    routes = Routes(["/ollama/"])
    assert routes.match("/api/chat") == ("/api/chat", "chat", "ollama")
    assert routes.match("/ollama/api/chat") == ("/api/chat", "chat", "ollama")
    assert routes.match("/v1/embeddings/") == ("/v1/embeddings", "embed", "openai")
    assert routes.match("/api/tags") is None
    assert routes.match("/other/api/chat") is None


def test_a_stream_split_anywhere_gives_its_text_chunks_and_the_server_statistics() -> None:
    got: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi"}, got)
    ex.answered(200, {})
    body = line(response="a", done=False) + line(response="b", done=False)
    body += line(response="", done=False) + line(response="c", done=False) + FINAL
    cut = [body[:5], body[5:40], body[40:41], body[41:90], body[90:]]
    feed(ex, cut, [0.1, 0.2, 0.3, 0.4, 0.5])
    ex.finish()
    (record,) = got
    assert record.stream and record.outcome == "ok" and record.model == "m"
    assert record.ttft_s == pytest.approx(0.2)
    assert record.output_tokens == 3
    assert record.server.load_s == pytest.approx(0.5)
    assert record.server.eval_count == 3
    assert record.total_s == pytest.approx(0.5)


def test_an_error_line_in_the_stream_is_an_error() -> None:
    got: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi"}, got)
    ex.answered(200, {})
    feed(ex, [line(response="a", done=False) + line(error="model ran out of memory")], [0.1])
    ex.finish()
    assert (got[0].outcome, got[0].error) == ("error", "model ran out of memory")


@pytest.mark.parametrize(
    "last",
    [
        line(error="model ran out of memory") + line(response="b", done=False) + FINAL,
        line(error="model ran out of memory", done=True),
    ],
    ids=["between-text-lines", "with-done"],
)
def test_an_error_line_gathered_with_others_into_one_chunk_is_an_error(last: bytes) -> None:
    got: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi"}, got)
    ex.answered(200, {})
    feed(ex, [line(response="a", done=False), line(response="a", done=False) + last], [0.1, 0.2])
    ex.finish()
    assert (got[0].outcome, got[0].error) == ("error", "model ran out of memory")


@pytest.mark.parametrize(
    ("body", "model", "stream"),
    [
        (b'{"model":"m:1b","prompt":"hi","stream":false}', "m:1b", False),
        (b'{"model": "m:1b", "prompt": "hi", "stream": true}', "m:1b", True),
        (b'{"prompt":"hi","model":"a\\"b","stream":true}', 'a\\"b', True),
        (b'{"stream":null,"model":"m","options":{"stream":false}}', "m", False),
        (b'{"model":"m","prompt":"hi"}', "m", True),
    ],
    ids=["compact", "spaced", "escaped-quote", "flag-not-true-or-false", "no-flag"],
)
def test_the_model_and_stream_flag_are_read_off_the_request(
    body: bytes, model: str, stream: bool
) -> None:
    got: list[CallRecord] = []
    ex = Exchange(GENERATE, "http://127.0.0.1:11434", body, got.append, "t")
    ex.answered(200, {})
    feed(ex, [FINAL if stream else FINAL[:-1]], [0.1])
    ex.finish()
    assert (got[0].model, got[0].stream, got[0].outcome) == (model, stream, "ok")


def test_a_stream_closed_before_its_end_is_cancelled() -> None:
    got: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi"}, got)
    ex.answered(200, {})
    feed(ex, [line(response="a", done=False)], [0.1])
    ex.finish()
    assert got[0].outcome == "cancelled" and got[0].ttft_s == pytest.approx(0.1)


def test_an_http_error_names_the_status_and_the_servers_message() -> None:
    got: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "nope", "prompt": "hi", "stream": False}, got)
    ex.answered(404, {})
    feed(ex, [b'{"error":"model \'nope\' not found"}'], [0.01])
    ex.finish()
    assert (got[0].outcome, got[0].error) == ("error", "HTTP 404: model 'nope' not found")


def test_a_whole_openai_answer_gives_its_usage() -> None:
    got: list[CallRecord] = []
    ex = exchange(CHAT_V1, {"model": "m", "messages": []}, got)
    ex.answered(200, {})
    answer = {
        "model": "m",
        "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
    feed(ex, [json.dumps(answer).encode()], [0.2])
    ex.finish()
    (record,) = got
    assert not record.stream
    assert record.output_tokens == 2
    assert record.ttft_s == record.total_s == pytest.approx(0.2)


def test_an_openai_stream_gives_text_times_and_usage() -> None:
    got: list[CallRecord] = []
    ex = exchange(CHAT_V1, {"model": "m", "messages": [], "stream": True}, got)
    ex.answered(200, {})

    def event(data: Any) -> bytes:
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    parts = [
        event({"choices": [{"delta": {"role": "assistant", "content": ""}}]}),
        event({"choices": [{"delta": {"content": "he"}}]}),
        event({"choices": [{"delta": {"content": "llo"}, "finish_reason": "stop"}]}),
        event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
        b"data: [DONE]\n\n",
    ]
    feed(ex, parts, [0.1, 0.2, 0.3, 0.35, 0.4])
    ex.finish()
    (record,) = got
    assert record.outcome == "ok"
    assert record.ttft_s == pytest.approx(0.2)
    assert record.gaps is not None and record.gaps.p50 == pytest.approx(0.1)
    assert record.output_tokens == 2


def test_a_replayed_answer_is_timed_by_the_recorded_chunks() -> None:
    got: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi"}, got)
    first, second = line(response="a", done=False), line(response="b", done=False)
    recorded = ((0.5, len(first)), (0.7, len(second)), (0.9, len(FINAL)))
    ex.answered(200, {"llmperf_recorded": (0.5, recorded)})
    feed(ex, [first + second + FINAL], [0.001])  # replayed at once, in one piece
    ex.finish()
    (record,) = got
    assert record.timing == "recorded"
    assert (record.ttft_s, record.total_s) == (0.5, 0.9)
    assert record.gaps is not None and record.gaps.max == pytest.approx(0.2)


def test_a_record_is_given_once() -> None:
    got: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi", "stream": False}, got)
    ex.answered(200, {})
    feed(ex, [line(response="x", done=True)], [0.1])
    ex.finish()
    ex.finish("error", RuntimeError("late"))
    assert len(got) == 1 and got[0].outcome == "ok"


def test_a_stream_of_one_line_a_chunk_reads_as_the_same_stream_split_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one line a chunk is read in one batch, without a look at each line; split elsewhere,
    # line by line: the same figures
    lines = [line(response=text, done=False) for text in ("a", "b", "c")] + [FINAL]
    split: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi"}, split)
    ex.answered(200, {})
    body = b"".join(lines)
    ends = [sum(map(len, lines[: i + 1])) for i in range(len(lines))]
    cuts = [body[: ends[0] - 3], body[ends[0] - 3 : ends[1]], body[ends[1] : ends[2]]]
    feed(ex, [*cuts, body[ends[2] :]], [0.05, 0.1, 0.3, 0.4])  # line 1 ends in chunk 2
    ex.finish()
    batched: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi"}, batched)
    ex.answered(200, {})
    monkeypatch.setattr(Exchange, "_look", None)  # the batch is read without it
    feed(ex, lines, [0.1, 0.3, 0.4, 0.4])
    ex.finish()
    ((by_line,), (at_once,)) = split, batched
    assert at_once.ttft_s == by_line.ttft_s == pytest.approx(0.1)
    assert at_once.gaps is not None and by_line.gaps is not None
    assert at_once.gaps.count == by_line.gaps.count == 2
    assert at_once.gaps.max == pytest.approx(0.2) and by_line.gaps.max == pytest.approx(0.2)
    assert at_once.server == by_line.server and at_once.server.eval_count == 3
    assert (at_once.outcome, at_once.output_tokens) == (by_line.outcome, by_line.output_tokens)
    assert at_once.total_s == pytest.approx(by_line.total_s)


def test_lines_gathered_into_chunks_read_as_the_same_lines_one_a_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a server that gathers its writes (the emulator does) sends several lines a chunk: read
    # in one batch, each line takes its chunk's time, as read line by line
    lines = [line(response=text, done=False) for text in ("a", "b", "c", "d")] + [FINAL]
    one_a_chunk: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi"}, one_a_chunk)
    ex.answered(200, {})
    feed(ex, lines, [0.1, 0.1, 0.3, 0.3, 0.5])
    ex.finish()
    gathered: list[CallRecord] = []
    ex = exchange(GENERATE, {"model": "m", "prompt": "hi"}, gathered)
    ex.answered(200, {})
    monkeypatch.setattr(Exchange, "_look", None)  # the batch is read without it
    feed(ex, [lines[0] + lines[1], lines[2] + lines[3], lines[4]], [0.1, 0.3, 0.5])
    ex.finish()
    ((each,), (together,)) = one_a_chunk, gathered
    assert together.ttft_s == each.ttft_s == pytest.approx(0.1)
    assert together.gaps is not None and each.gaps is not None
    assert together.gaps.count == each.gaps.count == 3
    assert together.gaps.max == pytest.approx(each.gaps.max) == pytest.approx(0.2)
    assert together.output_tokens == each.output_tokens
    assert together.server == each.server and together.server.eval_count == 3
    assert together.total_s == pytest.approx(each.total_s) == pytest.approx(0.5)


@given(
    st.lists(
        st.tuples(st.floats(0, 5), st.integers(1, 4)),  # (a step forward, lines in the read)
        min_size=1,
        max_size=40,
    ),
    st.booleans(),
)
def test_the_gap_summary_of_times_is_the_summary_of_their_gaps(
    reads: list[tuple[float, int]], gathered: bool
) -> None:
    times: list[float] = []
    now = 100.0
    for step, lines in reads:
        now += step
        times += [now] * lines
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    expected = GapSummary.of(gaps)
    got = GapSummary.between(times, gathered)
    if expected is None:
        assert got is None
        return
    assert got is not None
    assert got.count == expected.count
    assert (got.p50, got.p95, got.max) == (expected.p50, expected.p95, expected.max)
    assert got.mean == pytest.approx(expected.mean, rel=1e-9, abs=1e-12)


def test_times_out_of_order_such_as_an_edited_cassettes_give_their_gaps_as_they_are() -> None:
    times = [1.0, 2.0, 1.0]
    assert GapSummary.between(times) == GapSummary.of([1.0, -1.0])


@given(st.lists(st.floats(-5, 5), min_size=1, max_size=40))
def test_the_gap_summary_interpolates_its_quantiles_as_the_stats_module_does(
    gaps: list[float],
) -> None:
    summary = GapSummary.of(gaps)
    assert summary is not None
    assert summary.p50 == quantile(gaps, 0.5)
    assert summary.p95 == quantile(gaps, 0.95)
    assert summary.max == max(gaps)
