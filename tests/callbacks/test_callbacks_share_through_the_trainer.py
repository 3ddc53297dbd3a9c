"""Callbacks never find each other: what one publishes goes through its summary() (merged by trainer.summary()),
state_dict() only reads, and the call completions the signal and time-budget callbacks need come from one tracker
the Trainer owns."""

from __future__ import annotations

import io
import json

import jax
from rich.console import Console

from emergence import Callback, Trainer
from emergence.callbacks import (
    ArtifactExportCallback,
    CheckpointCallback,
    LogThrottleCallback,
    RichProgressCallback,
    SignalCheckpointCallback,
    TimeBudgetCallback,
    TrackerCallback,
)
from emergence.calls import CallTracker
from emergence.checkpoint import read_manifest
from emergence.metrics import CSVSink, read_metrics_csv
from emergence.testing import FakeClock, fire, toy_task
from tests.helpers import probe, tracker_pair


class Publisher(Callback):
    """Any callback may publish through summary(): no other callback's attributes are looked for."""

    def __init__(self):
        self.step = None

    def on_train_call_end(self, trainer, metrics):
        self.step = trainer.step

    def summary(self):
        return {"metrics": {"custom": 1.5}, "metrics_step": self.step, "time_left": 3661.0}


def test_progress_and_artifacts_read_what_is_published_through_summary(tmp_path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    Trainer(
        callbacks=[
            Publisher(),
            RichProgressCallback(console=console, plain_every_n_seconds=1e-9),
            ArtifactExportCallback(every_n_steps=2),
        ],
        max_steps=4,
        run_dir=tmp_path,
        resume=None,
    ).fit(toy_task())
    assert "budget 1:01:01 left" in out.getvalue() and "custom 1.5" in out.getvalue()
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["metrics"] == {"custom": 1.5} and progress["metrics_step"] == 4


def test_the_logger_and_the_budget_publish_through_summary(tmp_path):
    clock = FakeClock()
    trainer = Trainer(
        callbacks=[
            TimeBudgetCallback(max_duration=100, clock=clock),
            LogThrottleCallback(every_n_steps=3, sinks=[CSVSink()]),
        ],
        max_steps=7,
        run_dir=tmp_path,
        resume=None,
    )
    trainer.fit(toy_task())
    published = trainer.summary()
    assert published["metrics_step"] == 7 and set(published["metrics"]) == {"loss", "grad_norm"}
    assert published["time_left"] == 100.0  # the fake clock never moved
    assert not hasattr(trainer, "logged_metrics") and not hasattr(trainer, "time_left")


def test_state_dict_only_reads(tmp_path):
    """Asked mid-interval, twice, the logger and the trackers return the same and write nothing."""
    sink = CSVSink()
    logger = LogThrottleCallback(every_n_steps=100, sinks=[sink])
    trackers = TrackerCallback(every_n_steps=100, trackers=tracker_pair(), probe=probe)
    trainer = Trainer(toy_task(), [logger, trackers], max_steps=200, run_dir=tmp_path, resume=None)
    trainer._state, trainer.last_metrics = trainer._calls.get(1)(trainer.task.init_state(jax.random.key(0)))
    trainer.fitting = True
    fire(trainer, "setup")
    fire(trainer, "on_fit_start")
    for step in range(1, 100):
        trainer._step = step
        fire(trainer, "on_train_call_end", trainer.last_metrics)
    trainer._step = 100  # a logging and sampling step whose hooks have not run yet
    first = [logger.state_dict(), trackers.state_dict()]
    second = [logger.state_dict(), trackers.state_dict()]
    assert json.dumps(first) == json.dumps(second)
    assert trackers.last_sample_step == 0 and trackers.trackers[0].history.names == []
    assert "metrics_step" not in trainer.summary()
    fire(trainer, "teardown")


def test_a_checkpoint_at_a_logging_step_holds_the_same_windows_whatever_the_callback_order(tmp_path):
    def saved_windows(order):
        logger = LogThrottleCallback(every_n_steps=4, sinks=[CSVSink()])
        checkpoint = CheckpointCallback(every_n_steps=6, keep_last=None)
        callbacks = [checkpoint, logger] if order == "checkpoint first" else [logger, checkpoint]
        run_dir = tmp_path / order.replace(" ", "_")
        Trainer(toy_task(), callbacks, max_steps=8, run_dir=run_dir, resume=None, async_checkpoint=False).fit()
        manifest = read_manifest(run_dir / "checkpoints" / "step_6.safetensors")
        rows = read_metrics_csv(run_dir / "metrics.csv")[1]
        return manifest["callbacks"][logger.state_key], [row["step"] for row in rows]

    assert saved_windows("checkpoint first") == saved_windows("logger first")


def test_one_tracker_is_fed_at_most_once_per_call_however_many_callbacks_read_it(tmp_path, monkeypatch):
    """Fed when a watching hook is due: every call until a call was timed, then as their next_due() says."""
    fed = []
    real = CallTracker.dispatched
    monkeypatch.setattr(CallTracker, "dispatched", lambda self, *args: fed.append(args[0]) or real(self, *args))
    trainer = Trainer(
        toy_task(),
        [TimeBudgetCallback(max_duration=3600), SignalCheckpointCallback()],
        max_steps=10,
        steps_per_call=2,
        run_dir=tmp_path,
        resume=None,
    )
    trainer.fit()
    assert fed[0] == 2 and fed == sorted(set(fed)) and set(fed) <= {2, 4, 6, 8, 10}
    assert trainer.calls.completed <= 10


def test_without_a_callback_that_watches_calls_the_tracker_is_never_fed(tmp_path, monkeypatch):
    monkeypatch.setattr(CallTracker, "dispatched", lambda self, *args: (_ for _ in ()).throw(AssertionError("fed")))
    trainer = Trainer(toy_task(), [CheckpointCallback(every_n_steps=3)], max_steps=6, run_dir=tmp_path, resume=None)
    trainer.fit()
    assert not trainer.calls.watched
