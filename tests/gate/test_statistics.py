"""The Mann-Whitney U test the gate relies on, checked against counting every arrangement."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from pytest_llmperf.judge.gate import holm, mann_whitney_greater, smallest_p


def by_enumeration(current: list[float], base: list[float]) -> float:
    """P(U >= observed U) over every split of the pooled values: the definition itself."""

    def u(a: list[float], b: list[float]) -> float:
        return sum((x > y) + 0.5 * (x == y) for x in a for y in b)

    pooled = current + base
    observed = u(current, base)
    at_least = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(current)):
        picked = set(chosen)
        a = [pooled[i] for i in chosen]
        b = [pooled[i] for i in range(len(pooled)) if i not in picked]
        total += 1
        at_least += u(a, b) >= observed - 1e-9
    return at_least / total


@pytest.mark.parametrize("seed", range(40))
def test_without_ties_the_p_value_is_exact(seed: int) -> None:
    rng = random.Random(seed)
    current = [rng.random() + rng.choice((0, 0.3)) for _ in range(rng.randint(1, 7))]
    base = [rng.random() for _ in range(rng.randint(1, 7))]
    assert mann_whitney_greater(current, base) == pytest.approx(
        by_enumeration(current, base), abs=1e-12
    )


@pytest.mark.parametrize("seed", range(12))
def test_with_ties_small_samples_are_exact_too(seed: int) -> None:
    rng = random.Random(seed)
    current = [float(rng.randint(0, 4) + seed % 3) for _ in range(rng.randint(2, 8))]
    base = [float(rng.randint(0, 4)) for _ in range(rng.randint(2, 8))]
    assert mann_whitney_greater(current, base) == pytest.approx(
        by_enumeration(current, base), abs=1e-12
    )


def test_with_ties_large_samples_use_the_normal_approximation() -> None:
    rng = random.Random(7)
    current = [float(rng.randint(0, 9) + 1) for _ in range(14)]
    base = [float(rng.randint(0, 9)) for _ in range(14)]  # C(28, 14): too many to count
    # a Monte Carlo estimate of the exact p-value, 20,000 shuffles, seeded
    pooled, observed = current + base, sum((x > y) + 0.5 * (x == y) for x in current for y in base)
    hits = 0
    for _ in range(20_000):
        rng.shuffle(pooled)
        a, b = pooled[:14], pooled[14:]
        hits += sum((x > y) + 0.5 * (x == y) for x in a for y in b) >= observed
    assert mann_whitney_greater(current, base) == pytest.approx(hits / 20_000, abs=0.01)


def test_holm_adjusts_step_down() -> None:
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == []
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8 caps at 1


def test_one_sided_in_the_direction_asked() -> None:
    slow = [1.3 + i / 100 for i in range(30)]
    fast = [1.0 + i / 100 for i in range(30)]
    assert mann_whitney_greater(slow, fast) < 1e-6
    assert mann_whitney_greater(fast, slow) > 0.99


def test_large_samples_use_the_approximation_and_agree_with_a_known_value() -> None:
    # every current value above every base value: U = n1 * n2, z far in the tail
    p = mann_whitney_greater([float(i + 100) for i in range(40)], [float(i) for i in range(40)])
    assert 0 < p < 1e-12
    # identical samples: no evidence at all
    assert mann_whitney_greater([1.0] * 30, [1.0] * 30) == 1.0


def test_the_smallest_p_value_of_a_sample_size() -> None:
    assert smallest_p(3, 3) == pytest.approx(1 / 20)
    assert smallest_p(1, 40) == pytest.approx(1 / 41)
    assert smallest_p(5, 5) == pytest.approx(1 / math.comb(10, 5))
    assert mann_whitney_greater([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]) == pytest.approx(1 / 20)


def test_empty_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        mann_whitney_greater([], [1.0])
