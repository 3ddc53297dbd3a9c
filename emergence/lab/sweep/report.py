"""The sweep report, from metrics.csv alone: what each config reached, and whether it differs from the baseline.

Each run is summarised by the mean of its last `window` logged values of a metric
(`emergence.lab.sweep.windows`). Per (config, metric), with the statistics of
`emergence.lab.stats`:

- the mean and the IQM over seeds, each with a 95% stratified bootstrap interval;
- against the baseline (the first grid point): the difference of means with its Welch t
  interval, the probability of improvement (in the metric's better direction) with its
  bootstrap interval, and `excludes_zero`: Welch's p after Holm's correction across every
  (config, metric) compared is below 0.05. Only this Welch + Holm rule decides; the
  bootstrap intervals describe (with 3 seeds they are too narrow to decide);
- a config whose seeds all give the same value is flagged in words (`note`);
- per metric, the seed-to-seed SD (pooled within configs) and the seeds per config a t
  test needs to detect a 5% difference from the baseline mean at 80% power.

The metrics covered are `METRICS` (data: name, better direction, what a constant means);
those absent from a sweep's metrics.csv are listed as skipped. Written as report.md and
report.csv (one row per (config, metric)), with sweep_curves.png, by `write_report`: at
the end of a sweep, by the finalize step of a platform that has one (before SHA256SUMS and
outputs.zip), and by `emergence report DIR`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields, replace
from pathlib import Path

import numpy as np

from emergence.checkpoint.atomic import atomic_write_bytes
from emergence.lab import stats
from emergence.lab.sweep.windows import WINDOW, Summaries, run_summaries


@dataclass(frozen=True)
class Metric:
    """A metric the report covers: its metrics.csv name, which way is better, and what a constant value means."""

    name: str
    higher_is_better: bool = True
    constant: str = "{value:g} in every run: no variation"


METRICS = (
    Metric("eval/food_per_agent_step"),
    Metric("eval/mean_return"),
    Metric("env/food_per_agent_step"),
    Metric("env/mean_reward"),
    Metric("env/population", constant="population {value:g} in every run: pinned (at its cap: no selection)"),
    Metric("env/births", constant="{value:g} births in every run: no turnover, no selection"),
    Metric("env/deaths", constant="{value:g} deaths in every run: no turnover, no selection"),
    Metric("env/generation_max", constant="deepest generation {value:g} in every run: no descent"),
    Metric("env/generation_mean", constant="mean generation {value:g} in every run: no descent"),
    Metric("env/lineages", higher_is_better=False, constant="{value:g} founder lineages in every run: none lost"),
    Metric("env/age_at_death"),
    Metric("env/selection_opportunity", constant="opportunity for selection {value:g} in every run"),
    Metric("env/food_gini", constant="food share inequality {value:g} in every run"),
    Metric("spec/index", constant="specialisation index {value:g} in every run (0 by construction without evolution)"),
    Metric("spec/excess", constant="specialisation excess over shuffled heads {value:g} in every run"),
    Metric("tracker/events", constant="{value:g} emergence events in every run"),
)
"""What the report covers, in its order. Higher is better except for founder lineages (selection removes them).
`loss/*` is left out: the loss contains the very coefficients a sweep ablates."""


@dataclass(frozen=True)
class Line:
    """One (config, metric) row of report.csv; the baseline's comparison columns are nan."""

    config: str
    metric: str
    seeds: int
    mean: float
    mean_lo: float
    mean_hi: float
    iqm: float
    iqm_lo: float
    iqm_hi: float
    diff: float
    diff_lo: float
    diff_hi: float
    p: float
    p_holm: float
    excludes_zero: bool
    prob_improvement: float
    prob_lo: float
    prob_hi: float
    sd: float
    seeds_needed: float
    note: str


@dataclass(frozen=True)
class Report:
    """The report's rows, the baseline's label, the window, and the covered metrics a sweep did not log."""

    lines: list[Line]
    baseline: str
    window: int
    skipped: list[str]


def report_lines(
    metrics_csv: Path, metrics: Sequence[Metric] = METRICS, window: int = WINDOW, reps: int = stats.REPS
) -> Report:
    """The report of a sweep's long-form metrics.csv (see the module docstring)."""
    runs = run_summaries(metrics_csv, window)
    if not runs:
        raise ValueError(f"{metrics_csv} has no rows yet; run the sweep until it logs")
    baseline = next(iter(runs))
    present = [m for m in metrics if m.name in runs[baseline]]
    unadjusted = [line for metric in present for line in _metric_lines(runs, baseline, metric, reps)]
    adjusted, marked = stats.differs([line.p for line in unadjusted])
    lines = [replace(line, p_holm=float(p), excludes_zero=bool(m)) for line, p, m in zip(unadjusted, adjusted, marked)]
    return Report(lines, baseline, window, [m.name for m in metrics if m not in present])


def _metric_lines(runs: Summaries, baseline: str, metric: Metric, reps: int) -> list[Line]:
    """One metric's lines, one per config that logged it; p unadjusted."""
    groups = {
        label: list(per_metric[metric.name].values()) for label, per_metric in runs.items() if metric.name in per_metric
    }
    base = groups[baseline]
    sd = stats.pooled_sd(list(groups.values()))
    needed = stats.seeds_needed(sd, float(np.mean(base)))
    sign = 1.0 if metric.higher_is_better else -1.0
    lines = []
    for label, values in groups.items():
        average = stats.bootstrap(stats.mean, values, reps=reps)
        middle = stats.bootstrap(stats.iqm, values, reps=reps)
        compared = label != baseline
        welch = stats.welch(values, base) if compared else stats.Welch(0.0, math.nan, math.nan, math.nan)
        better = (
            stats.bootstrap(stats.prob_improvement, sign * np.asarray(values), sign * np.asarray(base), reps=reps)
            if compared
            else stats.Estimate(math.nan)
        )
        constant = len(values) >= 2 and np.ptp(values) == 0
        lines.append(
            Line(
                config=label,
                metric=metric.name,
                seeds=len(values),
                **dict(zip(("mean", "mean_lo", "mean_hi"), astuple(average))),
                **dict(zip(("iqm", "iqm_lo", "iqm_hi"), astuple(middle))),
                **dict(zip(("diff", "diff_lo", "diff_hi", "p"), astuple(welch))),
                p_holm=math.nan,  # set once every comparison of the report is known
                excludes_zero=False,
                **dict(zip(("prob_improvement", "prob_lo", "prob_hi"), astuple(better))),
                sd=sd,
                seeds_needed=needed,
                note=metric.constant.format(value=values[0]) if constant else "",
            )
        )
    return lines


def markdown(report: Report) -> str:
    """report.md: how to read it, then one table per metric (configs as rows), then the metrics skipped."""
    lines = report.lines
    compared = sum(np.isfinite(line.p) for line in lines)
    configs = list(dict.fromkeys(line.config for line in lines))
    out = [
        "# Sweep report\n",
        f"{len(configs)} configs; each run summarised by the mean of its last {report.window} logged values of a "
        f"metric (evaluations for eval/*). Baseline: **{report.baseline}**. Intervals are 95%. Mean, IQM and "
        "P(improvement) intervals are stratified bootstrap, descriptive only (too narrow with 3 seeds). "
        f"The difference from the baseline is decided by Welch's t test, Holm-corrected across the {compared} "
        "comparisons: ** = it differs at a family-wise 5%. P(improvement): the chance a run of the config beats a "
        "run of the baseline, in the metric's better direction.\n",
    ]
    for metric in dict.fromkeys(line.metric for line in lines):
        rows = [line for line in lines if line.metric == metric]
        out.append(_metric_table(metric, rows, report.baseline))
    if report.skipped:
        out.append("Not in this sweep's metrics.csv (skipped): " + ", ".join(report.skipped) + ".\n")
    return "\n".join(out)


def _metric_table(metric: str, rows: list[Line], baseline: str) -> str:
    first = rows[0]
    needed = f"{first.seeds_needed:.0f}" if math.isfinite(first.seeds_needed) else _why_no_seeds(first)
    head = (
        f"## {metric}\n\nSeed-to-seed SD {first.sd:.3g}; seeds per config to detect a 5% difference from the "
        f"baseline at 80% power: {needed}.\n\n"
        "| config | seeds | mean [CI] | IQM [CI] | diff [Welch CI] | p (Holm) | P(improvement) [CI] | note |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r.config} | {r.seeds} | {_interval(r.mean, r.mean_lo, r.mean_hi)} | {_interval(r.iqm, r.iqm_lo, r.iqm_hi)}"
        f" | {'baseline' if r.config == baseline else _difference(r)}"
        f" | {'' if math.isnan(r.p_holm) else f'{r.p_holm:.3g}'}"
        f" | {'' if math.isnan(r.prob_improvement) else _interval(r.prob_improvement, r.prob_lo, r.prob_hi)}"
        f" | {r.note} |\n"
        for r in rows
    )
    return head + body


def _interval(value: float, lo: float, hi: float) -> str:
    return f"{value:.4g}" + ("" if math.isnan(lo) else f" [{lo:.3g}, {hi:.3g}]")


def _difference(line: Line) -> str:
    if math.isnan(line.diff_lo):
        return f"{line.diff:+.4g}"
    return f"{line.diff:+.4g} [{line.diff_lo:.3g}, {line.diff_hi:.3g}]" + (" **" if line.excludes_zero else "")


def _why_no_seeds(line: Line) -> str:
    if math.isnan(line.sd):
        return "unknown (one seed per config)"
    return "none to size (no seed-to-seed variation)" if line.sd == 0 else "undefined (the baseline mean is 0)"


def csv_text(report: Report) -> str:
    """report.csv: one row per (config, metric), the columns of `Line`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(Line)])
    writer.writerows([repr(v) if isinstance(v, float) else v for v in astuple(line)] for line in report.lines)
    return out.getvalue()


REPORT_FILES = ("report.md", "report.csv", "sweep_curves.png")


def write_report(run_dir: Path, window: int = WINDOW, reps: int = stats.REPS) -> list[Path]:
    """report.md, report.csv and sweep_curves.png from `run_dir`/metrics.csv, each written atomically; their paths."""
    from emergence.lab.sweep.curves import write_sweep_curves  # matplotlib: only when drawing

    metrics_csv = Path(run_dir) / "metrics.csv"
    if not metrics_csv.is_file():
        raise ValueError(f"{run_dir} has no metrics.csv; pass the --train.run-dir of a sweep")
    report = report_lines(metrics_csv, window=window, reps=reps)
    paths = [Path(run_dir) / name for name in REPORT_FILES]
    atomic_write_bytes(paths[0], markdown(report).encode())
    atomic_write_bytes(paths[1], csv_text(report).encode())
    write_sweep_curves(metrics_csv, paths[2], list(dict.fromkeys(line.metric for line in report.lines)))
    return paths
