"""Simulated sweeps for measuring the report's decision rule (Welch t per comparison, Holm across the sweep).

A simulated sweep is what the report sees after summarising runs: per (config, metric), one
value per seed. `CONFIGS` configs (the first the baseline) x `METRICS` metrics by default, so
each sweep is one Holm family of (CONFIGS - 1) x METRICS comparisons, the baseline shared as in a real
report. Values are drawn iid from one distribution (a null sweep), and `effect` SDs are added
to config 1's first metric when measuring power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emergence.lab import stats

CONFIGS = 4
METRICS = 3


@dataclass(frozen=True)
class Rates:
    """What a batch of simulated sweeps marked: the share of comparisons, of sweeps with any mark, of the effect."""

    sweeps: int
    comparisons: int
    marked_share: float  # comparisons marked, after Holm: the false-positive rate on null comparisons
    unadjusted_share: float  # comparisons with Welch p < 0.05 before Holm
    any_marked: float  # sweeps with at least one null comparison marked (family-wise error)
    power: float  # the effect comparison marked (nan without an effect)


def draw(rng: np.random.Generator, shape: tuple[int, int, int], distribution: str) -> np.ndarray:
    """One sweep's run summaries, shape (configs, metrics, seeds), SD 1: `normal` or `lognormal` (skewed)."""
    if distribution == "normal":
        return rng.normal(size=shape)
    spread = np.sqrt((np.e - 1) * np.e)  # the SD of a lognormal with sigma 1
    return rng.lognormal(0.0, 1.0, size=shape) / spread


def simulate(
    seeds: int,
    sweeps: int,
    effect: float = 0.0,
    distribution: str = "normal",
    seed: int = 0,
    configs: int = CONFIGS,
    metrics: int = METRICS,
) -> Rates:
    """Run `sweeps` simulated sweeps through `stats.welch` and `stats.differs`, the report's own decision path."""
    rng = np.random.default_rng(seed)
    marked = unadjusted = any_marked = hits = 0
    pairs = [(c, m) for c in range(1, configs) for m in range(metrics)]
    for _ in range(sweeps):
        values = draw(rng, (configs, metrics, seeds), distribution)
        values[1, 0] += effect
        p = [stats.welch(values[c, m], values[0, m]).p for c, m in pairs]
        decided = stats.differs(p)[1]
        null = [i for i, pair in enumerate(pairs) if not (effect and pair == (1, 0))]
        marked += int(decided[null].sum())
        unadjusted += sum(p[i] < stats.ALPHA for i in null)
        any_marked += bool(decided[null].any())
        hits += bool(effect and decided[pairs.index((1, 0))])
    comparisons = sweeps * (len(pairs) - (1 if effect else 0))  # the null ones
    share = (lambda count: count / comparisons) if comparisons else (lambda count: float("nan"))
    return Rates(
        sweeps,
        comparisons,
        share(marked),
        share(unadjusted),
        any_marked / sweeps,
        hits / sweeps if effect else float("nan"),
    )


def monte_carlo_error(rate: float, trials: int) -> float:
    """Three standard errors of a rate measured over `trials` (binomial): the slack a measured rate is allowed."""
    return 3 * np.sqrt(max(rate, 1e-3) * (1 - rate) / trials)
