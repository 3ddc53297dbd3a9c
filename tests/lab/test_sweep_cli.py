"""`emergence sweep` end to end (slow: each test starts `python -m emergence.cli` processes): a 2 x 2 grid x 2
seeds writes long-form metrics, a TensorBoard dir per run and the report; run i matches the same config trained
alone with `emergence train`; `ckpt export --run i` resumes alone and `eval` takes it; SIGKILL or SIGTERM and
resume end bitwise equal to the straight sweep (`emergence ckpt diff`)."""

from __future__ import annotations

import csv
import random
import signal
import time

import chex
import numpy as np
import pytest

from emergence.checkpoint import read_checkpoint
from tests.helpers import GRID, ckpt_diff, emergence, finish, newest_periodic_step
from tests.helpers import TINY_LAB as TINY

pytestmark = pytest.mark.slow

LENGTH = [
    "--train.total-steps",
    "96",
    "--train.save-interval",
    "32",
    "--train.eval-interval",
    "48",
    "--train.log-interval",
    "16",
]
"""12 updates of 8 env steps per run: periodic saves at 4, 8, 12; evaluations at 6 and 12; rows every 2."""
FINAL = "final_step_12.safetensors"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("straight")
    code, out, err = finish(emergence("sweep", *TINY, *GRID, *LENGTH, "--train.run-dir", str(run_dir)))
    assert code == 0, err[-3000:]
    return run_dir, out


def test_a_sweep_writes_long_metrics_a_tensorboard_dir_per_run_and_the_report(straight):
    run_dir, out = straight
    assert "8 runs (4 grid points x 2 seeds) in one program (map)" in out and "report: " in out
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert list(rows[0])[:5] == ["run", "diversity_bonus", "niche_pressure", "seed", "step"]
    assert sorted({(r["run"], r["step"]) for r in rows}) == sorted(
        (str(i), str(s)) for i in range(8) for s in range(2, 13, 2)
    )
    names = sorted(p.name for p in (run_dir / "tensorboard").iterdir())
    assert len(names) == 8 and "diversity_bonus=0.05,niche_pressure=0,seed=1" in names
    evals = {}
    for row in rows:
        if row["eval/food_per_agent_step"]:
            evals.setdefault((row["diversity_bonus"], row["niche_pressure"]), {}).setdefault(row["seed"], []).append(
                float(row["eval/food_per_agent_step"])
            )
    table = {(r["config"], r["metric"]): r for r in csv.DictReader(open(run_dir / "report.csv"))}
    line = table["diversity_bonus=0.05,niche_pressure=0", "eval/food_per_agent_step"]
    summaries = {config: [np.mean(v[-5:]) for v in seeds.values()] for config, seeds in evals.items()}
    values, base = summaries["0.05", "0.0"], summaries["0.0", "0.0"]  # each run: the mean of its last 5 evaluations
    assert float(line["mean"]) == pytest.approx(np.mean(values)) and float(line["iqm"]) == pytest.approx(
        np.mean(values)
    )
    assert float(line["diff"]) == pytest.approx(np.mean(values) - np.mean(base))
    assert (run_dir / "sweep_curves.png").stat().st_size > 0 and "# Sweep report" in (run_dir / "report.md").read_text()


def test_run_i_matches_its_config_trained_alone_and_its_export_resumes_alone(straight, tmp_path):
    """Run 5 = diversity_bonus 0.05, niche_pressure 0, seed 1. On a CPU the sweep loops over its runs (`map`):
    bitwise equal. Under `vmap` float tolerance only: batched matmuls reduce in another order (seen: 1.5e-8)."""
    run_dir, _ = straight
    exported = tmp_path / "run5" / "checkpoints" / "step_12.safetensors"
    code, out, err = finish(
        emergence("ckpt", "export", "--run", "5", str(run_dir / "checkpoints" / FINAL), str(exported))
    )
    assert code == 0 and "run 5" in out, err
    values = ["--evolution.diversity-bonus", "0.05", "--evolution.niche-pressure", "0", "--train.seed", "1"]
    alone_dir = tmp_path / "alone"
    code, _, err = finish(emergence("train", *TINY, *values, *LENGTH, "--train.run-dir", str(alone_dir)))
    assert code == 0, err[-3000:]
    alone, mine = read_checkpoint(alone_dir / "checkpoints" / FINAL), read_checkpoint(exported)
    assert mine.manifest["config"] == alone.manifest["config"] and sorted(mine.arrays) == sorted(alone.arrays)
    assert mine.manifest["exported"]["seed"] == 1 and mine.manifest["exported"]["run"] == 5
    chex.assert_trees_all_close(mine.arrays, alone.arrays, rtol=1e-5, atol=1e-6)
    if "in one program (map)" in straight[1]:
        chex.assert_trees_all_equal(mine.arrays, alone.arrays)
    code, out, err = finish(
        emergence(
            "train",
            *TINY,
            *values,
            *LENGTH[:2],
            "--train.total-steps",
            "112",
            "--train.run-dir",
            str(tmp_path / "run5"),
        )
    )
    assert code == 0 and "stopped: max_steps at update 14" in out and "config changed" not in err, err[-3000:]
    code, out, err = finish(emergence("eval", str(exported)))
    assert code == 0, err[-3000:]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_sweep_resumed_ends_bitwise_equal_to_the_straight_one(straight, tmp_path, signum):
    run_dir, _ = straight
    flags = [*TINY, *GRID, *LENGTH[:2], "--train.save-interval", "8", *LENGTH[4:], "--train.run-dir", str(tmp_path)]
    killed = emergence("sweep", *flags)
    deadline = time.monotonic() + 240
    while newest_periodic_step(tmp_path) < 3:
        assert killed.poll() is None and time.monotonic() < deadline, killed.stderr.read()[-2000:]
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.5))
    killed.send_signal(signum)
    code = killed.wait(timeout=120)
    if signum == signal.SIGTERM:  # an emergency checkpoint first, then exit 143 (or done already: 0)
        assert code in (143, 0) and (code == 0 or list((tmp_path / "checkpoints").glob("emergency*"))), code
    else:
        assert code == -signal.SIGKILL
    code, out, err = finish(emergence("sweep", *flags, "--train.resume-from", "auto"))
    assert code == 0, err[-3000:]
    diff = ckpt_diff(run_dir / "checkpoints" / FINAL, tmp_path / "checkpoints" / FINAL)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    straight_rows = [r for r in csv.DictReader(open(run_dir / "metrics.csv"))]
    resumed_rows = [r for r in csv.DictReader(open(tmp_path / "metrics.csv"))]
    key = lambda r: (int(r["run"]), int(r["step"]))
    assert sorted(map(key, resumed_rows)) == sorted(map(key, straight_rows))  # no gaps, no duplicates


def test_the_kaggle_notebook_runs_a_sweep_and_shows_its_report(tmp_path):
    from tests.notebook_kit import execute_notebook, fake_root, updates

    sweep = {"grid": {"diversity_bonus": [0, 0.05]}, "seeds": 2}
    run = execute_notebook(fake_root(tmp_path), total_steps=updates(4), sweep=sweep)
    assert "update 4 of 4 = 32 env steps per run" in run.text(4)
    rows = list(csv.DictReader(open(run.working / "metrics.csv")))
    assert {(r["run"], r["diversity_bonus"], r["seed"]) for r in rows} == {
        ("0", "0.0", "0"),
        ("1", "0.0", "1"),
        ("2", "0.05", "0"),
        ("3", "0.05", "1"),
    }
    assert (run.working / "report.md").exists() and (run.working / "sweep_curves.png").exists()
    assert any("text/markdown" in out.get("data", {}) for out in run.outputs(5))  # the report, shown inline
    assert "files verified" in run.text(6)
