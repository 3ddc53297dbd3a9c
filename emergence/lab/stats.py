"""Few-seed statistics for the sweep report: intervals that describe, and one rule that decides.

A sweep has 3 to 10 seeds per config, so the report separates two jobs:

- **Describing** a config: its mean and its IQM (interquartile mean, rliable's
  `aggregate_iqm`), and against the baseline the probability of improvement (rliable's
  `probability_of_improvement`: P(X > Y), ties count a half), each with a 95% stratified
  percentile bootstrap interval (rliable's method: each config's seeds resampled on their
  own). The statistics are rliable's definitions; the resampling is `scipy.stats.bootstrap`,
  vectorised over the draws, because `rliable.library` calls the statistic once per draw in
  Python (0.8 s per interval at 2,000 draws: minutes for a 30-config report at the end of a
  Kaggle session, inside its save margin). With 3 seeds a bootstrap has only 10 distinct
  resampled means, so these intervals are too narrow there: they describe, they never decide.
- **Deciding** whether a config differs from the baseline: Welch's t test on the difference
  of means (`scipy.stats.ttest_ind(equal_var=False)`, its 95% interval shown), Holm's
  correction across every (config, metric) compared (`holm`). Its
  false-positive rate and power on simulated sweeps are measured by tests/lab/test_report_coverage.py
  and reported in docs/sweeps.md.

And for planning: the seeds per config a two-sample t test needs to detect a difference of
5% of the baseline mean at 80% power (the noncentral t, `scipy.stats.nct`), from the seed SD.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats

ALPHA = 0.05
"""The family-wise error rate of the decisions (Holm), and the level of every interval (1 - ALPHA)."""
REPS = 2000
"""Bootstrap draws per interval."""
DETECT = 0.05
"""The difference `seeds_needed` is sized for, as a fraction of the baseline mean."""
POWER = 0.8


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% interval (nan where there is no interval: one seed, or none)."""

    value: float
    lo: float = math.nan
    hi: float = math.nan


@dataclass(frozen=True)
class Welch:
    """Welch's t comparison of a config with the baseline: the difference of means, its 95% interval, p."""

    diff: float
    lo: float
    hi: float
    p: float


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The interquartile mean (25% trimmed from each end), as rliable's `aggregate_iqm` on one task."""
    return scipy.stats.trim_mean(values, 0.25, axis=axis)


def mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The plain mean, with the `axis` signature that `scipy.stats.bootstrap` calls."""
    return np.mean(values, axis=axis)


def prob_improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 over all pairs (Mann-Whitney U / n m): rliable's `probability_of_improvement`."""
    u = scipy.stats.mannwhitneyu(x, y, alternative="greater", axis=axis).statistic
    return u / (np.shape(x)[axis] * np.shape(y)[axis])


def bootstrap(statistic, *samples: Sequence[float], reps: int = REPS, seed: int = 0) -> Estimate:
    """`statistic(*samples)` and its 95% stratified percentile bootstrap interval (each sample resampled alone).

    No interval when a sample has fewer than 2 values; a sample whose values are all
    equal resamples to itself, so its interval is the point.
    """
    arrays = [np.asarray(sample, float) for sample in samples]
    value = float(statistic(*arrays, axis=-1))
    if min(len(a) for a in arrays) < 2:
        return Estimate(value)
    with warnings.catch_warnings():  # a constant sample: scipy warns that the distribution is degenerate
        warnings.simplefilter("ignore")
        found = scipy.stats.bootstrap(
            arrays,
            statistic,
            n_resamples=reps,
            method="percentile",
            confidence_level=1 - ALPHA,
            vectorized=True,
            paired=False,
            rng=np.random.default_rng(seed),
        )
    return Estimate(value, float(found.confidence_interval.low), float(found.confidence_interval.high))


def welch(values: Sequence[float], baseline: Sequence[float]) -> Welch:
    """Welch's t test of mean(values) - mean(baseline): the difference, its 95% interval and the two-sided p.

    p is nan (not tested) with fewer than 2 seeds on a side, or when neither side varies
    (no noise to test against: the report says so in words).
    """
    a, b = np.asarray(values, float), np.asarray(baseline, float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return Welch(diff, math.nan, math.nan, math.nan)
    with warnings.catch_warnings():  # nearly equal values: scipy warns of precision loss, the result stands
        warnings.simplefilter("ignore")
        found = scipy.stats.ttest_ind(a, b, equal_var=False)
    interval = found.confidence_interval(1 - ALPHA)
    return Welch(diff, float(interval.low), float(interval.high), float(found.pvalue))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values of one family of tests; nan (not tested) stays nan and does not count in the family.

    The k-th smallest of m p-values becomes max over j <= k of min(1, (m - j + 1) p_(j)):
    what `statsmodels.stats.multitest.multipletests(method="holm")` returns (a test holds
    them equal), written out because that function runs a full `gc.collect()` per call,
    which the coverage simulations cannot afford thousands of times.
    """
    p = np.asarray(pvalues, float)
    adjusted = np.full_like(p, math.nan)
    tested = np.flatnonzero(np.isfinite(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    factors = len(order) - np.arange(len(order))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
    return adjusted


def differs(pvalues: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The decision over one family of Welch p-values: (Holm-adjusted p, adjusted p < ALPHA); nan is never marked."""
    adjusted = holm(pvalues)
    return adjusted, np.nan_to_num(adjusted, nan=1.0) < ALPHA


def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """The seed-to-seed SD within configs, pooled over the configs with 2 or more seeds (nan if none)."""
    usable = [np.asarray(g, float) for g in groups if len(g) >= 2]
    if not usable:
        return math.nan
    dof = sum(len(g) - 1 for g in usable)
    return float(math.sqrt(sum(np.var(g, ddof=1) * (len(g) - 1) for g in usable) / dof))


def t_test_power(seeds: int, effect: float) -> float:
    """Power of a two-sided two-sample t test at ALPHA with `seeds` per config, for a difference of `effect` SDs."""
    df, shift = 2 * seeds - 2, effect * math.sqrt(seeds / 2)
    critical = scipy.stats.t.ppf(1 - ALPHA / 2, df)
    return float(scipy.stats.nct.sf(critical, df, shift) + scipy.stats.nct.cdf(-critical, df, shift))


def seeds_needed(sd: float, baseline_mean: float, fraction: float = DETECT, power: float = POWER) -> float:
    """The fewest seeds per config (at least 2) at which `t_test_power` reaches `power` for `fraction` of |mean|.

    nan when the SD is zero or unknown, or the baseline mean is 0 (a relative difference
    of nothing): the report says which.
    """
    if not (math.isfinite(sd) and sd > 0 and math.isfinite(baseline_mean) and baseline_mean != 0):
        return math.nan
    effect = fraction * abs(baseline_mean) / sd
    low, high = 1, 2  # power grows with seeds: double to pass the target, then bisect to the first that reaches it
    while t_test_power(high, effect) < power:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if t_test_power(middle, effect) >= power else (middle, high)
    return float(high)
