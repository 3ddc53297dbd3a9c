"""The sweep report, from metrics.csv alone: what each config reached, and whether it beats the baseline.

Per config (grid point), each reported metric's final value (a run's last logged one)
as the mean over its seeds ± the half-width of a 95% Student-t interval; per config
against the baseline (the first grid point: every key at its first value), the
difference of means with a 95% percentile bootstrap interval (seeds resampled with
replacement within each config, `BOOTSTRAP` draws, a fixed generator so the report is
reproducible) and whether that interval excludes zero. With one seed per config there
is no interval (`nan`). Written as report.md and report.csv, with sweep_curves.png
(`emergence.lab.sweep.curves`), by `emergence report DIR` and at the end of a sweep.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np

from emergence.checkpoint.atomic import atomic_write_bytes
from emergence.lab.sweep.sinks import read_long_csv

REPORTED = (
    "eval/food_per_agent_step",
    "eval/mean_return",
    "env/food_per_agent_step",
    "env/population",
    "env/mean_reward",
    "loss/total",
)
"""The metrics the report covers, those of them that metrics.csv has."""
BOOTSTRAP = 2000
T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
"""Student-t 97.5% quantiles for 1..30 degrees of freedom (1.96 beyond)."""


@dataclass(frozen=True)
class Line:
    """One (config, metric) line of the report."""

    config: str
    metric: str
    seeds: int
    mean: float
    ci95: float
    diff: float
    diff_lo: float
    diff_hi: float
    excludes_zero: bool


def final_values(header: list[str], rows: list[dict[str, str]]) -> dict[str, dict[str, dict[int, float]]]:
    """config label -> metric -> seed -> the run's last logged value, in the order configs first appear."""
    keys = header[1 : header.index("seed")]
    out: dict[str, dict[str, dict[int, float]]] = {}
    for row in sorted(rows, key=lambda r: (int(r["run"]), int(r["step"]))):
        label = ",".join(f"{key}={float(row[key]):g}" for key in keys) or "(all)"
        metrics = out.setdefault(label, {})
        for metric in header[header.index("step") + 1 :]:
            if row.get(metric, "") != "":
                metrics.setdefault(metric, {})[int(row["seed"])] = float(row[metric])
    return out


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the half-width of its 95% Student-t interval (nan for one value)."""
    x = np.asarray(values, float)
    if len(x) < 2:
        return float(x.mean()), math.nan
    t = T_975[len(x) - 2] if len(x) - 1 <= len(T_975) else 1.96
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def bootstrap_diff(values: Sequence[float], baseline: Sequence[float], rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile bootstrap interval of mean(values) - mean(baseline), each resampled with replacement."""
    a, b = np.asarray(values, float), np.asarray(baseline, float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    draws = rng.choice(a, (BOOTSTRAP, len(a))).mean(1) - rng.choice(b, (BOOTSTRAP, len(b))).mean(1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def report_lines(metrics_csv: Path, metrics: Sequence[str] = REPORTED) -> list[Line]:
    """Every (config, metric) line of the report of a sweep's long-form metrics.csv."""
    header, rows = read_long_csv(metrics_csv)
    finals = final_values(header, rows)
    if not finals:
        raise ValueError(f"{metrics_csv} has no rows yet; run the sweep until it logs")
    baseline = next(iter(finals.values()))
    rng = np.random.default_rng(0)
    lines = []
    for label, per_metric in finals.items():
        for metric in [m for m in metrics if m in per_metric and m in baseline]:
            values, base = list(per_metric[metric].values()), list(baseline[metric].values())
            mean, half = mean_ci(values)
            lo, hi = bootstrap_diff(values, base, rng)
            lines.append(
                Line(
                    label, metric, len(values), mean, half, mean - float(np.mean(base)), lo, hi, bool(lo > 0 or hi < 0)
                )
            )
    return lines


def markdown(lines: list[Line]) -> str:
    """Two Markdown tables: mean ± 95% CI per config, and the difference from the baseline with its bootstrap CI."""
    metrics = list(dict.fromkeys(line.metric for line in lines))
    configs = list(dict.fromkeys(line.config for line in lines))
    cell = {(line.config, line.metric): line for line in lines}
    head = "| config | seeds | " + " | ".join(metrics) + " |\n|---|---|" + "---|" * len(metrics) + "\n"
    means = "".join(
        f"| {c} | {cell[c, metrics[0]].seeds} | "
        + " | ".join(f"{cell[c, m].mean:.4g} ± {cell[c, m].ci95:.2g}" if (c, m) in cell else "" for m in metrics)
        + " |\n"
        for c in configs
    )
    diffs = "".join(
        f"| {c} | {cell[c, metrics[0]].seeds} | "
        + " | ".join(_diff_cell(cell[c, m]) if (c, m) in cell else "" for m in metrics)
        + " |\n"
        for c in configs[1:]
    )
    return (
        f"# Sweep report\n\nFinal values, mean ± 95% CI over seeds (Student t).\n\n{head}{means}\n"
        f"Difference from the baseline ({configs[0]}), mean [95% bootstrap CI]; ** = the interval excludes "
        f"zero.\n\n{head}{diffs}"
    )


def _diff_cell(line: Line) -> str:
    return f"{line.diff:+.4g} [{line.diff_lo:.3g}, {line.diff_hi:.3g}]" + (" **" if line.excludes_zero else "")


def csv_text(lines: list[Line]) -> str:
    """The report's lines as CSV, one (config, metric) per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(Line)])
    writer.writerows([repr(v) if isinstance(v, float) else v for v in astuple(line)] for line in lines)
    return out.getvalue()


def write_report(run_dir: Path) -> list[Path]:
    """report.md, report.csv and sweep_curves.png from `run_dir`/metrics.csv, written atomically; their paths."""
    from emergence.lab.sweep.curves import write_sweep_curves  # matplotlib: only when drawing

    metrics_csv = Path(run_dir) / "metrics.csv"
    if not metrics_csv.is_file():
        raise ValueError(f"{run_dir} has no metrics.csv; pass the --train.run-dir of a sweep")
    lines = report_lines(metrics_csv)
    paths = [Path(run_dir) / name for name in ("report.md", "report.csv", "sweep_curves.png")]
    atomic_write_bytes(paths[0], markdown(lines).encode())
    atomic_write_bytes(paths[1], csv_text(lines).encode())
    write_sweep_curves(metrics_csv, paths[2], [m for m in REPORTED if any(line.metric == m for line in lines)])
    return paths
