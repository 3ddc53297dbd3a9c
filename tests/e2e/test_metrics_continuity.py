"""Metrics history across a SIGKILL and a resume equals an uninterrupted run's: CSV rows and TensorBoard series.

The subprocess (tests/scripts/observed_run.py) checkpoints every 10 steps, logs the mean
of each train metric every 4 steps and evaluates every 10. Killed at step 37 (after the
checkpoint at 30 and the rows at 32 and 36), it is resumed from step 30: the rows at
32 and 36 are written again, from windows that began before the kill (29..32).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from emergence.callbacks import CheckpointCallback, LogThrottleCallback
from emergence.metrics import CSVSink, TensorBoardSink, read_metrics_csv
from emergence.testing import Scenario
from tests.helpers import SCRIPTS, wait_for_line
from tests.scripts.driver import COMPILE_CACHE


def tb_series(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in `logdir` as TensorBoard shows it (its reader, purges applied, nothing sampled away)."""
    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    return read_metrics_csv(run_dir / "metrics.csv")[1]


@pytest.fixture
def observed_run():
    """Starts tests/scripts/observed_run.py processes; any still running at the end is killed."""
    started: list[subprocess.Popen] = []

    def start(run_dir: Path, max_steps: int, *args: str) -> subprocess.Popen:
        command = [sys.executable, str(SCRIPTS / "observed_run.py"), str(run_dir), str(max_steps), *args]
        started.append(
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **COMPILE_CACHE}
            )
        )
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.timeout(180)
def test_sigkill_and_resume_leave_the_same_csv_rows_and_tensorboard_series_as_a_straight_run(tmp_path, observed_run):
    straight = observed_run(tmp_path / "straight", 60)
    killed = observed_run(tmp_path / "killed", 60, "--hang-at", "37")
    wait_for_line(killed, "saved step_30")
    wait_for_line(killed, "hanging 37")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    before_resume = {int(row["step"]) for row in csv_rows(tmp_path / "killed")}
    assert {32, 36} <= before_resume, "the killed session logged past its checkpoint: the resume must cut that"
    assert max(step for step, _ in tb_series(tmp_path / "killed" / "tensorboard")["loss"]) == 36

    finish(observed_run(tmp_path / "killed", 60))
    finish(straight)

    resumed, reference = csv_rows(tmp_path / "killed"), csv_rows(tmp_path / "straight")
    steps = [int(row["step"]) for row in resumed]
    assert steps == sorted(set(steps)), "no duplicate steps"
    assert steps == [4, 8, 10, 12, 16, 20, 24, 28, 30, 32, 36, 40, 44, 48, 50, 52, 56, 60], "no gaps"
    assert resumed == reference
    assert tb_series(tmp_path / "killed" / "tensorboard") == tb_series(tmp_path / "straight" / "tensorboard")
    assert len(list((tmp_path / "killed" / "tensorboard").iterdir())) == 2, "one event file per session"


def _fit(
    run_dir: Path, max_steps: int, resume="auto", stop_at: int | None = None, background: bool = False, **trainer_args
) -> None:
    """Checkpoints every 10 steps, logs every 4, evaluates every 10; `stop_at`: stops there as a time budget does;
    `background`: rows fetched and written on the logger's writer thread."""
    scenario = Scenario(max_steps=max_steps, run_dir=run_dir, resume=resume, eval_every_n_steps=10, **trainer_args)
    if stop_at is not None:
        scenario.stop_at(stop_at, "time_budget")
    logger = LogThrottleCallback(every_n_steps=4, sinks=[CSVSink(), TensorBoardSink()], background=background)
    assert scenario.run([CheckpointCallback(every_n_steps=10), logger]).exception is None


@pytest.fixture(scope="module")
def straight_60(tmp_path_factory) -> Path:
    """An uninterrupted 60-step run: the reference history."""
    run_dir = tmp_path_factory.mktemp("straight")
    _fit(run_dir, 60)
    return run_dir


@pytest.mark.parametrize("background", [False, True])
def test_a_resume_from_another_run_dir_carries_the_history_into_the_new_one(tmp_path, straight_60, background):
    """The Kaggle way: session 1 stops on its time budget at step 30; session 2 resumes from its output (read
    only) into a new run dir. The window open at the stop (steps 29-30) travels in the checkpoint, so the row
    at 32 averages 29..32 as in the straight run; with rows on a writer thread too (the preset's
    `background=True`: the checkpoint waits for the rows already taken)."""
    _fit(tmp_path / "session1", 60, stop_at=30, background=background)
    _fit(tmp_path / "session2", 60, resume=tmp_path / "session1" / "checkpoints", background=background)
    assert csv_rows(tmp_path / "session2") == csv_rows(straight_60)
    assert tb_series(tmp_path / "session2" / "tensorboard") == tb_series(straight_60 / "tensorboard")
    assert [int(row["step"]) for row in csv_rows(tmp_path / "session1")][-1] == 30, "session 1 is left as it was"


def test_extending_a_finished_run_keeps_its_last_row_and_continues_without_gaps_or_duplicates(tmp_path, straight_60):
    """A run that reached max_steps=30 logged its last partial window (29-30) at 30; raising max_steps to 60
    continues from there: the 30 row keeps those values, the 32 row covers 31-32, later rows equal the straight
    run's."""
    _fit(tmp_path, 30)
    finished = csv_rows(tmp_path)[-1]
    _fit(tmp_path, 60)
    rows, reference = csv_rows(tmp_path), csv_rows(straight_60)
    assert [row["step"] for row in rows] == [row["step"] for row in reference]
    assert rows[8] == finished and finished["loss"] != "", "the finished run's last row is kept as written"
    assert rows[:8] == reference[:8] and rows[10:] == reference[10:]
    assert rows[9]["loss"] != reference[9]["loss"], "the 32 row averages 31-32 only: 29-30 were logged at 30"


def test_an_overwriting_fresh_start_begins_a_new_history_and_keeps_the_old_one_aside(tmp_path):
    _fit(tmp_path, 20)
    _fit(tmp_path, 8, resume=None, overwrite=True)
    assert [int(row["step"]) for row in csv_rows(tmp_path)] == [4, 8]
    (previous,) = tmp_path.glob("previous-*")
    assert [int(row["step"]) for row in csv_rows(previous)] == [4, 8, 10, 12, 16, 20]  # eval rows at 10, 20
    assert [step for step, _ in tb_series(tmp_path / "tensorboard")["loss"]] == [4, 8]
