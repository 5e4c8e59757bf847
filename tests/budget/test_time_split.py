"""Where a call's time went: the arithmetic the verdict and the recommendations share."""

from __future__ import annotations

import pytest

from pytest_llmperf.client.protocol import ServerStats
from pytest_llmperf.judge.budget import split


def test_the_parts_of_a_call_with_the_servers_total_add_up() -> None:
    server = ServerStats(total_s=3.0, load_s=0.5, prompt_eval_s=0.25, eval_s=1.25)
    parts = split(4.0, server)
    assert (parts.load_s, parts.prompt_s, parts.generation_s) == (0.5, 0.25, 1.25)
    assert parts.other_server_s == pytest.approx(1.0)  # held by the server, not worked on
    assert parts.outside_s == pytest.approx(1.0)  # before the server, and the network
    assert parts.waiting_s == pytest.approx(2.0)


def test_without_the_servers_total_the_rest_is_outside_its_parts() -> None:
    parts = split(2.0, ServerStats(prompt_eval_s=0.5, eval_s=1.0))
    assert (parts.other_server_s, parts.outside_s) == (None, 0.5)


def test_no_statistics_no_parts() -> None:
    parts = split(2.0, ServerStats())
    assert (parts.other_server_s, parts.outside_s, parts.waiting_s) == (None, None, 0.0)


def test_a_server_total_above_the_clients_is_no_negative_wait() -> None:
    # clocks differ: a server may report a little more than the client measured
    parts = split(1.0, ServerStats(total_s=1.01, eval_s=1.02))
    assert parts.outside_s == 0.0 and parts.waiting_s == 0.0
