"""Each run of a sweep summarised over a window of its last logged values, read from metrics.csv alone.

One point is noise: a run's last logged row says what happened in one logging interval.
The report summarises a run's metric by the mean of its last `window` logged values
(`WINDOW` by default; for `eval/*` metrics these are its last evaluations, for training
metrics its last logged rows). An empty (or nan) cell is no value, never 0: a metric absent
in a window (`env/age_at_death` with no death) is skipped, and the window reaches further back.
A run with fewer logged values than `window` is summarised over those it has.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from emergence.lab.sweep.sinks import read_long_csv

WINDOW = 5
"""Logged values per run (per metric) the report averages: the last five."""

Summaries = dict[str, dict[str, dict[int, float]]]
"""config label -> metric -> seed -> the run's summary, configs in the order their runs are numbered."""


def config_label(keys: list[str], row: dict[str, str]) -> str:
    """A run's config as `key=value,...` (grid values as `%g`), or `(all)` for a sweep of seeds only."""
    return ",".join(f"{key}={float(row[key]):g}" for key in keys) or "(all)"


def run_summaries(metrics_csv: Path, window: int = WINDOW) -> Summaries:
    """Every run's mean over its last `window` logged values of each metric, grouped by config; see the module doc."""
    if window < 1:
        raise ValueError(f"the report's window must be a positive count of logged values, got {window}")
    header, rows = read_long_csv(metrics_csv)
    keys = header[1 : header.index("seed")]
    metrics = header[header.index("step") + 1 :]
    series: dict[str, dict[str, dict[int, list[float]]]] = {}
    for row in sorted(rows, key=lambda r: (int(r["run"]), int(r["step"]))):
        per_metric = series.setdefault(config_label(keys, row), {})
        for metric in metrics:
            value = float(row.get(metric) or "nan")
            if math.isfinite(value):
                per_metric.setdefault(metric, {}).setdefault(int(row["seed"]), []).append(value)
    return {
        label: {
            metric: {seed: float(np.mean(values[-window:])) for seed, values in seeds.items()}
            for metric, seeds in per_metric.items()
        }
        for label, per_metric in series.items()
    }
