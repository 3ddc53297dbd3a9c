"""Lightning's call shape beside ours: `Trainer(callbacks=..., max_steps=N).fit(task)`, and `max_steps=None`."""

from __future__ import annotations

import logging

import pytest

from emergence import Callback, Trainer
from emergence.callbacks import (
    ArtifactExportCallback,
    FinalizeCallback,
    LogThrottleCallback,
    RichProgressCallback,
    TimeBudgetCallback,
    TrackerCallback,
)
from emergence.metrics import CSVSink
from emergence.testing import toy_task


class StopAt(Callback):
    """Stops the run at `step` (reason "enough"), as a time budget or early stopping would."""

    can_stop = True

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_call_end(self, trainer, metrics):
        if trainer.step >= self.step:
            trainer.request_stop("enough")


def test_the_task_can_go_to_fit_as_in_lightning(tmp_path):
    trainer = Trainer(callbacks=[], max_steps=4, run_dir=tmp_path, resume=None)
    state = trainer.fit(toy_task())
    assert trainer.step == 4 and int(state.step) == 4 and trainer.stop_reason == "max_steps"


def test_the_task_can_go_to_the_constructor_as_before(tmp_path):
    trainer = Trainer(toy_task(), max_steps=3, run_dir=tmp_path, resume=None)
    trainer.fit()
    assert trainer.step == 3


def test_without_a_run_dir_it_is_named_for_the_task_given_to_fit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = Trainer(max_steps=1, resume=None)
    trainer.fit(toy_task())
    assert trainer.run_dir.parent.name == "runs" and trainer.checkpoint_dir.exists()


def test_asking_for_the_checkpoint_dir_before_the_task_names_what_to_pass():
    with pytest.raises(ValueError, match="run dir is not known before the task: pass run_dir= to Trainer"):
        _ = Trainer(max_steps=1).checkpoint_dir


def test_a_task_in_both_places_is_a_one_line_error(tmp_path):
    task = toy_task()
    with pytest.raises(ValueError, match=r"given to both Trainer\(...\) and fit\(...\); pass it in one place"):
        Trainer(task, max_steps=1, run_dir=tmp_path).fit(task)


def test_no_task_anywhere_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match=r"no task to train: pass one to fit\(task\)"):
        Trainer(max_steps=1, run_dir=tmp_path).fit()


def test_a_callback_list_in_the_task_position_is_a_one_line_error():
    with pytest.raises(TypeError, match=r"first argument is the task; pass the callback list as callbacks=\[...\]"):
        Trainer([StopAt(1)], max_steps=1)


def test_a_task_without_eval_step_is_refused_at_fit_when_eval_is_asked(tmp_path):
    class NoEval:
        def init_state(self, rng): ...
        def train_step(self, state): ...

    with pytest.raises(ValueError, match="no eval_step"):
        Trainer(max_steps=1, eval_every_n_steps=1, run_dir=tmp_path).fit(NoEval())


def test_max_steps_none_trains_until_a_callback_stops_it_without_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="emergence"):
        trainer = Trainer(callbacks=[StopAt(7)], max_steps=None, steps_per_call=2, run_dir=tmp_path, resume=None)
        trainer.fit(toy_task())
    assert trainer.step == 8 and trainer.stop_reason == "enough"
    assert "no callback can stop the run" not in caplog.text


def test_max_steps_none_with_no_callback_that_can_stop_warns_in_one_line_at_fit_start(tmp_path, caplog):
    class QuietStop(Callback):  # stops, but does not say it can: the warning is the rule's, not a prediction
        def on_train_call_end(self, trainer, metrics):
            trainer.request_stop("quiet")

    with caplog.at_level(logging.WARNING, logger="emergence"):
        Trainer(callbacks=[QuietStop()], run_dir=tmp_path, resume=None).fit(toy_task())
    warnings = [r.getMessage() for r in caplog.records if "no callback can stop the run" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "set max_steps or add one" in warnings[0]


def test_the_survival_callbacks_that_can_stop_say_so():
    from emergence.callbacks import SignalCheckpointCallback

    assert TimeBudgetCallback.can_stop and SignalCheckpointCallback.can_stop and not Callback.can_stop


def test_everything_that_reads_max_steps_copes_with_none(scenario, fake_clock, run_dir):
    """Logger, trackers, artifacts, finalize, progress and the time budget, on a run without max_steps."""
    from tests.helpers import probe, tracker_pair

    callbacks = [
        TimeBudgetCallback(max_duration=3600, clock=fake_clock),
        LogThrottleCallback(every_n_steps=4, sinks=[CSVSink()]),
        TrackerCallback(every_n_steps=4, trackers=tracker_pair(), probe=probe),
        ArtifactExportCallback(every_n_steps=4),
        FinalizeCallback(zip_outputs=False),
        RichProgressCallback(plain_every_n_seconds=0.001),
    ]
    outcome = scenario.but(max_steps=None, resume=None).stop_at(10, "enough").run(callbacks)
    assert outcome.exception is None and outcome.step == 10 and outcome.stop_reason == "enough"
    assert callbacks[2].trackers[0].history.steps("loss").tolist() == [4, 8]
    assert outcome.trainer.summary()["metrics_step"] == 8
    assert (run_dir / "progress.json").exists() and (run_dir / "summary.json").exists()


@pytest.mark.parametrize("max_steps, lasts", [(4, [False, False, False, True]), (None, [False] * 4)])
def test_the_stop_agreement_meets_after_the_last_call_only_when_there_is_one(tmp_path, monkeypatch, max_steps, lasts):
    from emergence.parallel.stops import Stops

    seen = []
    monkeypatch.setattr(Stops, "call_ended", lambda self, last: seen.append(last))
    Trainer(callbacks=[StopAt(4)], max_steps=max_steps, run_dir=tmp_path, resume=None).fit(toy_task())
    assert seen == lasts
