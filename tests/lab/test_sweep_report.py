"""The sweep report keeps its promises on a metrics.csv written here: each run summarised over its last logged
values (an empty cell is no value), numbers recomputed with scipy agree, the decision is Welch + Holm over every
comparison, a constant metric is said in words, `loss/*` and absent metrics stay out, and report.csv has a row
per (config, metric) with the columns users read."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from emergence.cli import main
from emergence.lab import stats
from emergence.lab.sweep.report import METRICS, report_lines, write_report
from emergence.lab.sweep.windows import run_summaries

HEADER = ["run", "evolution", "seed", "step", "eval/food_per_agent_step", "env/population", "env/lineages"]
HEADER += ["env/age_at_death", "loss/total"]
SEEDS, STEPS = 4, 10
FOOD = {1.0: 1.5, 0.0: 1.0, 0.5: 1.02}
"""Training food per config: evolution on far above off, half-on barely above off."""


def write_sweep(run_dir: Path) -> dict:
    """A 3-config x 4-seed sweep, 10 logged steps: food noisy by config, population pinned at 8, lineages falling
    faster with evolution, age at death logged every third step only, loss noise. Returns every cell written."""
    rng = np.random.default_rng(0)
    cells: dict = {}
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for run, (evolution, seed) in enumerate((e, s) for e in FOOD for s in range(SEEDS)):
            for step in range(1, STEPS + 1):
                food = rng.normal(FOOD[evolution], 0.05)
                lineages = 8 - step * (0.5 + evolution * 0.3) + rng.normal(0, 0.2)
                age = rng.normal(40, 4) if step % 3 == 0 else ""
                row = [run, evolution, seed, step, food, 8, lineages, age, rng.normal()]
                cells[run, step] = dict(zip(HEADER, row))
                writer.writerow(row)
    return cells


@pytest.fixture
def sweep(tmp_path) -> tuple[Path, dict]:
    return tmp_path, write_sweep(tmp_path)


def test_each_run_is_the_mean_of_its_last_logged_values_and_an_empty_cell_is_no_value(sweep):
    run_dir, cells = sweep
    summaries = run_summaries(run_dir / "metrics.csv", window=3)
    run = 5  # evolution 0, seed 1
    food = [cells[run, step]["eval/food_per_agent_step"] for step in (8, 9, 10)]
    assert summaries["evolution=0"]["eval/food_per_agent_step"][1] == pytest.approx(np.mean(food))
    ages = [cells[run, step]["env/age_at_death"] for step in (3, 6, 9)]  # the last three logged, not 9, 10 as 0
    assert summaries["evolution=0"]["env/age_at_death"][1] == pytest.approx(np.mean(ages))
    everything = run_summaries(run_dir / "metrics.csv", window=100)  # a window past the run: all it has
    assert everything["evolution=1"]["env/population"][0] == 8.0
    with pytest.raises(ValueError, match="window must be a positive count"):
        run_summaries(run_dir / "metrics.csv", window=0)


def test_report_numbers_are_scipys_on_the_window_summaries(sweep):
    run_dir, _ = sweep
    report = report_lines(run_dir / "metrics.csv", window=5, reps=500)
    summaries = run_summaries(run_dir / "metrics.csv", window=5)
    assert report.baseline == "evolution=1" and report.window == 5
    lines = {(line.config, line.metric): line for line in report.lines}
    values = list(summaries["evolution=0"]["eval/food_per_agent_step"].values())
    base = list(summaries["evolution=1"]["eval/food_per_agent_step"].values())
    line = lines["evolution=0", "eval/food_per_agent_step"]
    welch = scipy.stats.ttest_ind(values, base, equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert (line.seeds, line.mean, line.iqm) == (
        SEEDS,
        pytest.approx(np.mean(values)),
        pytest.approx(stats.iqm(values)),
    )
    assert (line.diff, line.diff_lo, line.diff_hi, line.p) == pytest.approx(
        (np.mean(values) - np.mean(base), interval.low, interval.high, welch.pvalue)
    )
    assert line.mean_lo <= line.mean <= line.mean_hi and line.prob_improvement == 0.0 and line.excludes_zero
    compared = [line for line in report.lines if line.config != report.baseline]
    assert [line.p_holm for line in compared] == pytest.approx(
        list(stats.holm([line.p for line in compared])), nan_ok=True
    )
    assert all(line.excludes_zero == (line.p_holm < 0.05) for line in compared)
    assert lines["evolution=0", "eval/food_per_agent_step"].sd == pytest.approx(
        stats.pooled_sd([list(summaries[c]["eval/food_per_agent_step"].values()) for c in summaries])
    )


def test_a_lower_is_better_metric_counts_fewer_as_an_improvement(sweep):
    run_dir, _ = sweep
    assert not next(m for m in METRICS if m.name == "env/lineages").higher_is_better
    lines = {(line.config, line.metric): line for line in report_lines(run_dir / "metrics.csv", reps=200).lines}
    off = lines["evolution=0", "env/lineages"]  # evolution off keeps more founder lineages alive: worse
    assert off.diff > 0 and off.prob_improvement == 0.0


def test_a_constant_metric_is_said_in_words_and_not_tested(sweep):
    run_dir, _ = sweep
    report = report_lines(run_dir / "metrics.csv", reps=200)
    pinned = [line for line in report.lines if line.metric == "env/population"]
    assert all(line.note == "population 8 in every run: pinned (at its cap: no selection)" for line in pinned)
    assert all(math.isnan(line.p) and not line.excludes_zero for line in pinned)
    assert math.isnan(pinned[0].seeds_needed) and pinned[0].sd == 0
    write_report(run_dir, reps=200)
    shown = (run_dir / "report.md").read_text()
    assert "population 8 in every run: pinned (at its cap: no selection)" in shown
    assert "none to size (no seed-to-seed variation)" in shown


def test_loss_and_absent_metrics_stay_out_and_report_csv_has_a_row_per_config_and_metric(sweep):
    run_dir, _ = sweep
    written = write_report(run_dir, reps=200)
    assert [p.name for p in written] == ["report.md", "report.csv", "sweep_curves.png"] and written[2].stat().st_size
    rows = list(csv.DictReader(open(run_dir / "report.csv")))
    reported = ["eval/food_per_agent_step", "env/population", "env/lineages", "env/age_at_death"]
    assert [(r["config"], r["metric"]) for r in rows] == [(c, m) for m in reported for c in FOOD_LABELS]
    assert {"config", "metric", "excludes_zero", "iqm", "prob_improvement", "sd", "seeds_needed"} <= set(rows[0])
    shown = (run_dir / "report.md").read_text()
    assert "loss/total" not in shown and "Not in this sweep's metrics.csv (skipped): eval/mean_return" in shown
    assert "Holm-corrected across the 6 comparisons" in shown  # 2 configs x 3 metrics (population is constant)


FOOD_LABELS = ["evolution=1", "evolution=0", "evolution=0.5"]


def test_the_report_command_takes_a_window(sweep, capsys):
    run_dir, _ = sweep
    assert main(["report", str(run_dir), "--window", "2"]) == 0
    assert "mean of its last 2 logged values" in capsys.readouterr().out
    assert main(["report", str(run_dir), "--window", "none"]) == 2
    assert "--window must be a positive count of logged values per run, got 'none'" in capsys.readouterr().err


def test_a_nan_cell_is_no_value_either(tmp_path):
    rows = ["run,evolution,seed,step,env/age_at_death", "0,1.0,0,1,30.0", "0,1.0,0,2,nan", "0,1.0,0,3,"]
    (tmp_path / "metrics.csv").write_text("\n".join(rows) + "\n")
    assert run_summaries(tmp_path / "metrics.csv")["evolution=1"]["env/age_at_death"] == {0: 30.0}
