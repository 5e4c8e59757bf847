"""Lanes: several HTTP clients, so no connection pool grows large."""

from __future__ import annotations

import itertools

from pytest_llmperf.client.lanes import Lanes


def make_lanes(width: int = 2, most: int = 3) -> Lanes[int]:
    numbers = itertools.count()
    return Lanes(lambda: next(numbers), width=width, most=most)


def test_sequential_calls_share_the_first_lane() -> None:
    lanes = make_lanes()
    for _ in range(5):
        lane, client = lanes.take()
        lanes.give(lane)
        assert (lane, client) == (0, 0)
    assert lanes.clients == [0]


def test_a_new_lane_opens_only_when_every_lane_is_full() -> None:
    lanes = make_lanes(width=2, most=3)
    taken = [lanes.take() for _ in range(6)]
    assert [client for _, client in taken] == [0, 0, 1, 1, 2, 2]
    assert lanes.in_flight() == [2, 2, 2]


def test_past_the_most_lanes_the_least_busy_is_shared() -> None:
    lanes = make_lanes(width=1, most=2)
    first, second, third = lanes.take(), lanes.take(), lanes.take()
    assert [c for _, c in (first, second, third)] == [0, 1, 0]
    lanes.give(second[0])
    assert lanes.take()[1] == 1
