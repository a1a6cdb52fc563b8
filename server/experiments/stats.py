"""Comparisons of two experiment arms, all from scipy and statsmodels (nothing hand-written):

- proportions (e.g. first-attempt correctness): each arm's Wilson interval; the difference with Newcombe's
  hybrid score interval and a two-sided score test; the minimum detectable effect from the power of a
  two-sample test of proportions (Cohen's h, turned back into a difference at the control's rate).
- means (e.g. mastery gain, AI cost per student): each arm's t interval; the difference with Welch's test and
  interval; the minimum detectable effect from the power of a two-sample t test (Cohen's d times the pooled
  standard deviation).

The minimum detectable effect is the smallest true difference the current sample sizes would detect with 80 %
power at the 5 % level. No verdict is given below `MIN_SAMPLE` units per arm: `significant` is then False
and `enough_data` says why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, test_proportions_2indep

ALPHA = 0.05
POWER = 0.8
MIN_SAMPLE = 30


@dataclass(frozen=True)
class ArmEstimate:
    n: int
    estimate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    """Treatment minus control."""

    control: ArmEstimate
    treatment: ArmEstimate
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    minimum_detectable_effect: float
    enough_data: bool

    @property
    def significant(self) -> bool:
        return self.enough_data and self.p_value < ALPHA


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else math.nan


def _mde_proportion(control_rate: float, n_control: int, n_treatment: int) -> float:
    if min(n_control, n_treatment) < 2:
        return math.nan
    try:
        h = NormalIndPower().solve_power(
            nobs1=n_control, ratio=n_treatment / n_control, alpha=ALPHA, power=POWER, alternative="two-sided"
        )
    except (ValueError, RuntimeError):
        return math.nan
    # Cohen's h = 2·asin(√p₂) − 2·asin(√p₁), solved for p₂ (capped at certainty).
    angle = min(math.asin(math.sqrt(control_rate)) + float(h) / 2, math.pi / 2)
    return math.sin(angle) ** 2 - control_rate


def compare_proportions(
    control_successes: int, control_n: int, treatment_successes: int, treatment_n: int
) -> Comparison:
    arms = []
    for successes, n in ((control_successes, control_n), (treatment_successes, treatment_n)):
        if n == 0:
            arms.append(ArmEstimate(0, math.nan, math.nan, math.nan))
            continue
        low, high = proportion_confint(successes, n, alpha=ALPHA, method="wilson")
        estimate = successes / n
        # The formula's rounding can leave an all-right arm's upper bound at 0.9999999999999999 (an all-wrong
        # arm's lower one at 1e-17): the interval is held to contain its estimate.
        arms.append(ArmEstimate(n, estimate, min(float(low), estimate), max(float(high), estimate)))
    control, treatment = arms
    if control_n == 0 or treatment_n == 0:
        return Comparison(control, treatment, math.nan, math.nan, math.nan, math.nan, math.nan, False)
    # Rates of 0 or 1 make intermediate odds ratios infinite; the interval and test handle them.
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = confint_proportions_2indep(
            treatment_successes, treatment_n, control_successes, control_n, method="newcomb", alpha=ALPHA
        )
        test = test_proportions_2indep(
            treatment_successes, treatment_n, control_successes, control_n, method="score", return_results=True
        )
    return Comparison(
        control,
        treatment,
        treatment.estimate - control.estimate,
        float(low),
        float(high),
        _finite(float(test.pvalue)) if control.estimate != treatment.estimate else 1.0,
        _mde_proportion(control.estimate, control_n, treatment_n),
        min(control_n, treatment_n) >= MIN_SAMPLE,
    )


def _mean_estimate(values: np.ndarray) -> ArmEstimate:
    n = int(values.size)
    if n == 0:
        return ArmEstimate(0, math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if n < 2:
        return ArmEstimate(n, mean, math.nan, math.nan)
    spread = float(scipy_stats.sem(values))
    if spread == 0.0:
        return ArmEstimate(n, mean, mean, mean)
    low, high = scipy_stats.t.interval(1 - ALPHA, n - 1, loc=mean, scale=spread)
    return ArmEstimate(n, mean, _finite(low), _finite(high))


def compare_means(control_values: Sequence[float], treatment_values: Sequence[float]) -> Comparison:
    control_array = np.asarray(control_values, dtype=float)
    treatment_array = np.asarray(treatment_values, dtype=float)
    control, treatment = _mean_estimate(control_array), _mean_estimate(treatment_array)
    if control.n < 2 or treatment.n < 2:
        difference = treatment.estimate - control.estimate if control.n and treatment.n else math.nan
        return Comparison(control, treatment, difference, math.nan, math.nan, math.nan, math.nan, False)
    difference = treatment.estimate - control.estimate
    if float(control_array.std(ddof=1)) == 0.0 and float(treatment_array.std(ddof=1)) == 0.0:
        # No spread at all: Welch's test is undefined; equal constants differ by nothing.
        p_value = 1.0 if difference == 0 else 0.0
        return Comparison(control, treatment, difference, difference, difference, p_value, 0.0, control.n >= MIN_SAMPLE)
    with warnings.catch_warnings():
        # Arms whose values are all (nearly) equal, e.g. the same mastery gain for every student: the test is
        # still defined and its result right; scipy only warns that the variance is tiny.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy_stats.ttest_ind(treatment_array, control_array, equal_var=False)
    interval = result.confidence_interval(1 - ALPHA)
    pooled = math.sqrt(
        ((control.n - 1) * control_array.var(ddof=1) + (treatment.n - 1) * treatment_array.var(ddof=1))
        / (control.n + treatment.n - 2)
    )
    try:
        d = TTestIndPower().solve_power(
            nobs1=control.n, ratio=treatment.n / control.n, alpha=ALPHA, power=POWER, alternative="two-sided"
        )
        mde = float(d) * pooled
    except (ValueError, RuntimeError):
        mde = math.nan
    return Comparison(
        control,
        treatment,
        difference,
        _finite(interval.low),
        _finite(interval.high),
        _finite(float(result.pvalue)),
        mde,
        min(control.n, treatment.n) >= MIN_SAMPLE,
    )
