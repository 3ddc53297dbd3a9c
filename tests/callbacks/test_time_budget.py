"""Promise 4: the run stops itself with a final checkpoint before the wall, from measured call and save times."""

from __future__ import annotations

import json
import logging
import re
from collections import deque

import jax
import pytest

from emergence import Callback, Trainer
from emergence.callbacks import (
    AtexitCheckpointCallback,
    CheckpointCallback,
    KaggleTimeoutCallback,
    OnExceptionCheckpointCallback,
    SignalCheckpointCallback,
    TimeBudgetCallback,
)
from emergence.checkpoint import list_checkpoints, read_checkpoint
from emergence.platforms import process_start_time
from emergence.testing import FakeClock, toy_task
from tests.scripts.driver import run_child
from tests.scripts.train_subprocess import ScriptTask, calibrate_repeats

HOUR = 3600.0


@pytest.mark.slow  # a real 20 s budget in a subprocess: the default suite stays under 10 minutes
def test_a_20_second_budget_ends_with_a_durable_final_checkpoint_close_to_the_wall(tmp_path):
    """Each step does ~0.5 s of real device work, dispatched asynchronously like any JAX step.

    (Not a host sleep: the callback must see through async dispatch, where the host
    runs ahead of the device and host time between hooks says nothing.)
    """
    budget, margin = 20.0, 2.0
    done = run_child(
        tmp_path / "run",
        100_000,
        "--callbacks",
        "budget,checkpoint",
        "--every",
        "5",
        "--budget",
        str(budget),
        "--margin",
        str(margin),
        "--work-seconds",
        "0.5",
        timeout=60,
    )
    assert done.returncode == 0 and done.lines[-1] == "fit returned time_budget", done.stderr
    started = float(next(line for line in done.lines if line.startswith("budget from")).split()[2])
    final = [line.split() for line in done.lines if line.startswith("saved final_step_")]
    assert len(final) == 1
    durable_after = float(final[0][2]) - started
    call, save = map(float, re.search(r"call ([\d.]+) s, save ([\d.]+) s\)", done.stderr).groups())
    per_step_upper_bound = durable_after / int(final[0][1].split("_")[-1].split(".")[0])  # includes start-up
    assert 0.4 * per_step_upper_bound < call < 1.5 * per_step_upper_bound, (
        f"the call estimate {call} s is not what the device spends per step (< {per_step_upper_bound:.2f} s)"
    )
    assert budget - margin - 2 * (call + save) < durable_after < budget, (durable_after, call, save)
    checkpoints = tmp_path / "run" / "checkpoints"
    ckpt = read_checkpoint(checkpoints / final[0][1])
    latest = json.loads((checkpoints / "latest.json").read_text())
    assert latest["name"] == final[0][1] and latest["reason"] == "time_budget"
    periodic = checkpoints / final[0][1].removeprefix("final_")
    linked = periodic.exists() and periodic.samefile(checkpoints / final[0][1])  # the periodic save of its step
    assert ckpt.manifest["reason"] == ("periodic" if linked else "time_budget")


class FinishEachCall(Callback):
    """Waits for each call before the next hook: the device is then exactly where the fake clock says.

    Without it the host runs ahead of a loaded device and the budget sees calls finish in bursts
    on a clock that moves per dispatch: its estimate of a call then swings with the machine's load
    (this test stopped at step 41 and at 62 in loaded runs)."""

    def on_train_call_end(self, trainer, metrics) -> None:
        jax.block_until_ready(metrics)


@pytest.mark.parametrize("with_checkpoint_callback", [False, True])
def test_stops_at_margin_plus_call_plus_save_and_writes_one_final(scenario, fake_clock, with_checkpoint_callback):
    budget = TimeBudgetCallback(max_duration=100, margin=10, clock=fake_clock)  # each call takes 1 s of fake_clock
    extra = [CheckpointCallback()] if with_checkpoint_callback else []
    outcome = scenario.but(max_steps=500, resume=None).run([FinishEachCall(), budget, *extra])
    assert outcome.stop_reason == "time_budget"
    # needs margin 10 + call ~1 + save ~0.5 (guess for a tiny state) + ~1 queued: stops with ~12 s left
    assert 85 <= outcome.step <= 90 and budget.remaining > budget.margin
    assert [call.arg.kind for call in outcome.hooks if call.hook == "on_save_checkpoint"] == ["final"]
    assert read_checkpoint(outcome.trainer.last_checkpoint.path).manifest["step"] == outcome.step


def test_too_little_time_left_at_start_trains_nothing(tmp_path, caplog):
    trainer = Trainer(
        toy_task(),
        [TimeBudgetCallback(max_duration=5, margin=10), CheckpointCallback()],
        max_steps=50,
        run_dir=tmp_path,
        resume=None,
    )
    with caplog.at_level(logging.INFO, logger="emergence"):
        trainer.fit()
    assert trainer.step == 0 and trainer.stop_reason == "time_budget"
    assert list_checkpoints(tmp_path / "checkpoints") == []
    assert "not training" in caplog.text


class InFlight(Callback):
    """Records the most train calls ever queued on the device but not finished, seen at a call boundary."""

    def __init__(self):
        self.recent, self.most = deque(maxlen=64), 0

    def on_train_call_end(self, trainer, metrics):
        self.recent.append(jax.tree.leaves(metrics))
        self.most = max(self.most, sum(not all(leaf.is_ready() for leaf in call) for call in self.recent))


@pytest.mark.parametrize(
    "with_budget, bound",
    [(True, lambda n: n <= 2), (False, lambda n: n > 4)],
    ids=["bounded_with_budget", "unbounded_without"],
)
def test_the_host_runs_at_most_a_quarter_margin_ahead_of_the_device(tmp_path, with_budget, bound):
    task = ScriptTask((8,), work_repeats=calibrate_repeats(0.02))  # ~20 ms of device work per step
    watch = InFlight()
    budget = [TimeBudgetCallback(max_duration=HOUR, margin=0.01)] if with_budget else []  # bound: the minimum, 2
    Trainer(task, [*budget, watch], max_steps=60, run_dir=tmp_path, resume=None).fit()
    assert bound(watch.most), (watch.most, task.work_repeats)


def test_the_survival_callbacks_never_copy_device_values_to_the_host_per_call(tmp_path):
    callbacks = [
        TimeBudgetCallback(max_duration=HOUR),
        OnExceptionCheckpointCallback(),
        AtexitCheckpointCallback(),
        SignalCheckpointCallback(),
    ]
    trainer = Trainer(toy_task(), callbacks, max_steps=20, steps_per_call=2, run_dir=tmp_path, resume=None)
    with jax.transfer_guard_device_to_host("disallow"):
        trainer.fit()
    assert trainer.step == 20


def test_slurm_job_end_time_wins_when_it_is_earlier(tmp_path, monkeypatch):
    clock = FakeClock(start=1_000_000.0)
    monkeypatch.setenv("SLURM_JOB_END_TIME", "1000050")
    budget = TimeBudgetCallback(max_duration=HOUR, clock=clock)
    budget.setup(Trainer(toy_task(), [], max_steps=1, run_dir=tmp_path))
    assert budget.deadline == 1_000_050.0
    alone = TimeBudgetCallback(clock=clock)  # SLURM alone is enough
    alone.setup(Trainer(toy_task(), [], max_steps=1, run_dir=tmp_path))
    assert alone.deadline == 1_000_050.0


@pytest.mark.parametrize("accelerator, hours", [("cpu", 12), ("gpu", 12), ("tpu", 9)])
def test_kaggle_timeout_counts_12_or_9_hours_from_the_process_start(tmp_path, monkeypatch, accelerator, hours):
    monkeypatch.setattr("emergence.callbacks.time_budget.jax_accelerator", lambda: (accelerator, 1))
    kaggle = KaggleTimeoutCallback()
    kaggle.setup(Trainer(toy_task(), [], max_steps=1, run_dir=tmp_path))
    assert kaggle.deadline == pytest.approx(process_start_time() + hours * HOUR)
    assert kaggle.margin == 600


def test_kaggle_timeout_start_and_limit_can_be_overridden(tmp_path):
    kaggle = KaggleTimeoutCallback(limit=2 * HOUR, start=5_000.0, margin=30)
    kaggle.setup(Trainer(toy_task(), [], max_steps=1, run_dir=tmp_path))
    assert kaggle.deadline == 5_000.0 + 2 * HOUR and kaggle.margin == 30


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "needs max_duration .* or deadline"),
        ({"max_duration": 0}, "max_duration must be positive"),
        ({"max_duration": 10, "margin": -1}, "margin must be >= 0"),
        ({"deadline": 2e9, "start": 1e9}, "start only applies with max_duration"),
    ],
)
def test_bad_budgets_are_one_line_errors(kwargs, message, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_END_TIME", raising=False)
    with pytest.raises(ValueError, match=message):
        TimeBudgetCallback(**kwargs)


def test_a_malformed_slurm_end_time_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_END_TIME", "tomorrow")
    with pytest.raises(ValueError, match="SLURM_JOB_END_TIME='tomorrow' is not epoch seconds"):
        TimeBudgetCallback(max_duration=10)
