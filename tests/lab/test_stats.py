"""The report's statistics are the libraries' answers: rliable's IQM and probability of improvement, scipy's Welch
interval, statsmodels' Holm and t-test power, and a bootstrap interval that covers its statistic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from emergence.lab import stats

rliable_metrics = pytest.importorskip("rliable.metrics")  # only rliable.metrics: its library module needs arch


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_iqm_and_probability_of_improvement_are_rliables(seeds):
    rng = np.random.default_rng(seeds)
    x, y = rng.normal(size=seeds), rng.normal(0.5, size=seeds + 1)
    assert stats.iqm(x) == pytest.approx(rliable_metrics.aggregate_iqm(x[:, None]))
    assert stats.prob_improvement(x, y) == pytest.approx(
        rliable_metrics.probability_of_improvement(x[:, None], y[:, None])
    )
    tied = np.round(x)
    assert (
        stats.prob_improvement(tied, tied)
        == 0.5
        == rliable_metrics.probability_of_improvement(tied[:, None], tied[:, None])
    )


def test_welch_is_scipys_unequal_variance_t_with_its_interval():
    a, b = [1.0, 2.0, 4.0], [2.5, 3.0, 5.5, 6.0]
    found = stats.welch(a, b)
    reference = scipy.stats.ttest_ind(a, b, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert (found.diff, found.lo, found.hi, found.p) == pytest.approx(
        (np.mean(a) - np.mean(b), interval.low, interval.high, reference.pvalue)
    )


def test_welch_does_not_test_one_seed_or_two_constant_configs():
    assert math.isnan(stats.welch([1.0], [1.0, 2.0]).p)
    constant = stats.welch([32.0, 32.0, 32.0], [32.0, 32.0])
    assert constant.diff == 0 and math.isnan(constant.p) and math.isnan(constant.lo)


def test_holm_is_statsmodels_holm_and_leaves_untested_comparisons_out_of_the_family():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 12):
        p = rng.uniform(size=size) ** 3
        assert stats.holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    adjusted, marked = stats.differs([0.01, math.nan, 0.04, 0.03])
    assert adjusted[[0, 2, 3]] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[1])
    assert marked.tolist() == [True, False, False, False]


def test_a_bootstrap_interval_holds_its_statistic_and_a_constant_sample_has_a_point_interval():
    rng = np.random.default_rng(1)
    values = rng.normal(3.0, 1.0, size=10)
    found = stats.bootstrap(stats.iqm, values)
    assert found.lo < found.value < found.hi and found.value == pytest.approx(stats.iqm(values))
    assert stats.bootstrap(stats.mean, [32.0, 32.0, 32.0]) == stats.Estimate(32.0, 32.0, 32.0)
    assert math.isnan(stats.bootstrap(stats.mean, [5.0]).lo)


def test_seeds_needed_is_the_t_test_power_calculation():
    solver = pytest.importorskip("statsmodels.stats.power").TTestIndPower()
    # a 5% difference of a mean of 10 with SD 0.5 is a 1-SD effect: 17 seeds per config at 80% power
    assert stats.seeds_needed(0.5, 10.0) == 17 == math.ceil(solver.solve_power(1.0, alpha=0.05, power=0.8))
    assert stats.seeds_needed(2.0, 10.0) == math.ceil(solver.solve_power(0.25, alpha=0.05, power=0.8))
    assert stats.t_test_power(10, 1.0) == pytest.approx(solver.power(1.0, nobs1=10, alpha=0.05))
    assert stats.seeds_needed(1e-6, 10.0) == 2
    assert math.isnan(stats.seeds_needed(0.0, 10.0)) and math.isnan(stats.seeds_needed(0.5, 0.0))


def test_pooled_sd_pools_the_within_config_variances():
    assert stats.pooled_sd([[1.0, 3.0], [10.0, 12.0, 14.0]]) == pytest.approx(math.sqrt((2 + 8) / 3))
    assert math.isnan(stats.pooled_sd([[1.0], [2.0]]))
