"""Stop sequences cut an answer at the first stop string, even across token boundaries."""

from __future__ import annotations

from pytest_llmperf.emulator.stops import StopFilter


def run(tokens: list[str], stops: list[str]) -> tuple[str, bool]:
    stop_filter, out = StopFilter(stops), []
    for token in tokens:
        text, stopped = stop_filter.feed(token)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + stop_filter.flush(), False


def test_no_stops_passes_everything() -> None:
    assert run(["a", " b"], []) == ("a b", False)


def test_stop_inside_a_token() -> None:
    assert run(["Once", " upon a", " time"], ["a t"]) == ("Once upon ", True)
    assert run(["Once", " upon. a", " time"], ["."]) == ("Once upon", True)


def test_stop_split_across_tokens_is_held_back_then_cut() -> None:
    stop_filter = StopFilter(["\n\n"])
    assert stop_filter.feed("Hello\n") == ("Hello", False)
    assert stop_filter.feed("\nWorld") == ("", True)


def test_partial_match_that_does_not_complete_is_released() -> None:
    assert run(["ab", "c", "d"], ["cx"]) == ("abcd", False)


def test_earliest_of_several_stops_wins() -> None:
    assert run(["one two three"], ["three", "two"]) == ("one ", True)
