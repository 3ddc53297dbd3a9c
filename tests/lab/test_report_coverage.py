"""The report's decision rule is checked on simulated sweeps before it is trusted: on null sweeps (every config
drawn from one distribution) with 3, 5 and 10 seeds, at most 5% of comparisons are marked as differing (plus
Monte Carlo error); a 1-SD effect with 10 seeds is found with the power docs/sweeps.md states. The larger runs
behind docs/sweeps.md's numbers are marked slow (`pytest -m slow -s tests/lab/test_report_coverage.py`)."""

from __future__ import annotations

import pytest

from tests.lab.simulate import monte_carlo_error, simulate

FAST_SWEEPS = 150
SLOW_SWEEPS = 2000


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_null_sweeps_mark_at_most_five_percent_of_comparisons(seeds):
    rates = simulate(seeds, FAST_SWEEPS, seed=seeds)
    assert rates.marked_share <= 0.05 + monte_carlo_error(0.05, rates.comparisons)
    assert rates.any_marked <= 0.05 + monte_carlo_error(0.05, rates.sweeps)  # Holm: the family-wise rate too


def test_a_one_sd_effect_with_ten_seeds_is_found_in_about_a_fifth_of_sweeps():
    rates = simulate(10, FAST_SWEEPS, effect=1.0, seed=11)
    assert 0.2 - monte_carlo_error(0.2, rates.sweeps) <= rates.power <= 0.2 + monte_carlo_error(0.2, rates.sweeps)


@pytest.mark.slow
@pytest.mark.parametrize("distribution", ["normal", "lognormal"])
@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_null_rates_for_the_docs(distribution, seeds):
    rates = simulate(seeds, SLOW_SWEEPS, distribution=distribution, seed=seeds)
    print(
        f"\n{distribution}, {seeds} seeds, {rates.sweeps} sweeps, {rates.comparisons} comparisons: marked (Holm) "
        f"{rates.marked_share:.4f}, Welch p<0.05 unadjusted {rates.unadjusted_share:.4f}, "
        f"any marked {rates.any_marked:.4f}"
    )
    assert rates.marked_share <= 0.05 + monte_carlo_error(0.05, rates.comparisons)
    assert rates.any_marked <= 0.05 + monte_carlo_error(0.05, rates.sweeps)


@pytest.mark.slow
@pytest.mark.parametrize("distribution", ["normal", "lognormal"])
def test_power_for_the_docs(distribution):
    powered = simulate(10, SLOW_SWEEPS, effect=1.0, distribution=distribution, seed=99)
    alone = simulate(10, SLOW_SWEEPS, effect=1.0, distribution=distribution, seed=98, configs=2, metrics=1)
    print(
        f"\n{distribution}, 1-SD effect, 10 seeds, {powered.sweeps} sweeps: power {powered.power:.4f} among 9 "
        f"comparisons (null ones marked {powered.marked_share:.4f}), {alone.power:.4f} as a family of one"
    )
    assert powered.power > 0.1 and alone.power > powered.power
