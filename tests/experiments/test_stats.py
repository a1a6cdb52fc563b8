"""The experiment statistics on simulated cohorts whose true effect is known: the 95 % intervals cover the
true difference at least 90 % of the time, a zero effect is called significant about 5 % of the time, and
an effect the size of the reported minimum detectable effect is detected about 80 % of the time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.experiments.stats import MIN_SAMPLE, compare_means, compare_proportions

RUNS = 400


def simulate_proportions(seed: int, p_control: float, p_treatment: float, n: int) -> tuple[int, int, int, int]:
    rng = np.random.default_rng(seed)
    return int(rng.binomial(n, p_control)), n, int(rng.binomial(n, p_treatment)), n


@pytest.mark.parametrize(("p_control", "p_treatment", "n"), [(0.55, 0.65, 150), (0.2, 0.3, 80), (0.85, 0.9, 300)])
def test_proportion_intervals_cover_the_true_difference(p_control: float, p_treatment: float, n: int) -> None:
    covered = 0
    for seed in range(RUNS):
        comparison = compare_proportions(*simulate_proportions(seed, p_control, p_treatment, n))
        covered += comparison.ci_low <= p_treatment - p_control <= comparison.ci_high
    assert covered / RUNS >= 0.9


def test_a_zero_effect_on_proportions_is_rarely_significant() -> None:
    runs = 1000
    false_positives = sum(
        compare_proportions(*simulate_proportions(seed, 0.6, 0.6, 150)).significant for seed in range(runs)
    )
    assert 0.02 <= false_positives / runs <= 0.08


def test_the_minimum_detectable_proportion_effect_is_detected_with_about_80_percent_power() -> None:
    n = 200
    mde = compare_proportions(*simulate_proportions(0, 0.5, 0.5, n)).minimum_detectable_effect
    assert 0.1 < mde < 0.2
    detected = sum(
        compare_proportions(*simulate_proportions(seed, 0.5, 0.5 + mde, n)).significant for seed in range(RUNS)
    )
    assert 0.7 <= detected / RUNS <= 0.9


def skewed_costs(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    return rng.exponential(mean, n)


def test_mean_intervals_cover_the_true_difference_on_skewed_data() -> None:
    covered = 0
    for seed in range(RUNS):
        rng = np.random.default_rng(seed)
        comparison = compare_means(skewed_costs(rng, 1.0, 120), skewed_costs(rng, 1.3, 90))
        covered += comparison.ci_low <= 0.3 <= comparison.ci_high
    assert covered / RUNS >= 0.9


def test_a_zero_effect_on_means_is_rarely_significant() -> None:
    runs = 1000
    false_positives = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        false_positives += compare_means(rng.normal(0.1, 0.2, 60), rng.normal(0.1, 0.4, 90)).significant
    assert 0.02 <= false_positives / runs <= 0.08


def test_the_minimum_detectable_mean_effect_is_detected_with_about_80_percent_power() -> None:
    rng = np.random.default_rng(7)
    mde = compare_means(rng.normal(0, 1, 100), rng.normal(0, 1, 100)).minimum_detectable_effect
    assert 0.3 < mde < 0.5
    detected = 0
    for seed in range(RUNS):
        rng = np.random.default_rng(seed)
        detected += compare_means(rng.normal(0, 1, 100), rng.normal(mde, 1, 100)).significant
    assert 0.7 <= detected / RUNS <= 0.9


def test_no_verdict_below_the_minimum_sample() -> None:
    small = compare_proportions(0, MIN_SAMPLE - 1, MIN_SAMPLE - 1, MIN_SAMPLE - 1)
    assert small.p_value < 0.001 and not small.enough_data and not small.significant
    means = compare_means([0.0] * 5 + [0.1], [1.0] * 5 + [1.1])
    assert means.p_value < 0.001 and not means.significant


def test_empty_and_constant_arms() -> None:
    empty = compare_proportions(0, 0, 3, 10)
    assert empty.control.n == 0 and math.isnan(empty.difference) and not empty.significant
    assert math.isnan(compare_means([], [1.0, 2.0]).difference)
    constant = compare_means([1.0] * 40, [1.0] * 40)
    assert (constant.difference, constant.p_value, constant.significant) == (0.0, 1.0, False)
    single = compare_proportions(5, 5, 5, 5)
    assert single.difference == 0.0 and single.p_value == 1.0


@pytest.mark.parametrize("n", [28, 30, 60])
def test_an_arm_all_right_or_all_wrong_has_an_interval_holding_its_estimate(n: int) -> None:
    comparison = compare_proportions(n, n, 0, n)
    for arm, estimate in ((comparison.control, 1.0), (comparison.treatment, 0.0)):
        assert arm.estimate == estimate
        assert 0.0 <= arm.ci_low <= arm.estimate <= arm.ci_high <= 1.0
