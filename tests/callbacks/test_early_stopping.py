"""EarlyStoppingCallback: stops after `patience` checks without improvement, keeps its count across a resume."""

from __future__ import annotations

import pytest

from emergence.callbacks import CheckpointCallback, EarlyStoppingCallback
from emergence.testing import Scenario


def _stopper(**kwargs):
    """val_loss falls as the toy task trains, so mode="max" never improves after the first check."""
    settings = {"monitor": "val_loss", "mode": "max", "patience": 3, **kwargs}
    return lambda clock: [CheckpointCallback(every_n_steps=5), EarlyStoppingCallback(**settings)]


def test_it_stops_cleanly_after_patience_checks_without_improvement(run_dir):
    outcome = Scenario(max_steps=40, run_dir=run_dir, eval_every_n_steps=2).run(_stopper())
    stopper = outcome.trainer.callbacks[-1]
    assert outcome.stop_reason == "early_stopping" and outcome.exception is None
    assert outcome.step == stopper.stopped_step == 8  # best at 2; no better at 4, 6, 8
    assert stopper.wait == 3 and "final_step_8.safetensors" in outcome.checkpoints


def test_an_improving_metric_never_stops_the_run(run_dir):
    outcome = Scenario(max_steps=20, run_dir=run_dir, eval_every_n_steps=2).run(_stopper(mode="min"))
    assert outcome.stop_reason == "max_steps"


def test_min_delta_demands_a_real_improvement(run_dir):
    outcome = Scenario(max_steps=40, run_dir=run_dir, eval_every_n_steps=2).run(_stopper(mode="min", min_delta=1e6))
    assert outcome.stop_reason == "early_stopping" and outcome.step == 8


def test_a_resumed_run_keeps_its_patience_count(run_dir, tmp_path):
    straight = Scenario(max_steps=40, run_dir=tmp_path / "straight", eval_every_n_steps=2).run(_stopper())
    first = Scenario(max_steps=5, run_dir=run_dir, eval_every_n_steps=2).run(_stopper())
    assert first.stop_reason == "max_steps" and first.trainer.callbacks[-1].wait == 1
    resumed = first.resume(max_steps=40)
    assert resumed.trainer.callbacks[-1].wait == 3
    assert resumed.stop_reason == "early_stopping" and resumed.step == straight.step == 8


def test_a_train_metric_is_averaged_on_device_and_checked_every_n_steps(run_dir):
    outcome = Scenario(max_steps=40, run_dir=run_dir).run(_stopper(monitor="loss", every_n_steps=3, patience=1))
    assert outcome.stop_reason == "early_stopping" and outcome.step == 6


def test_a_train_metric_window_survives_a_resume_mid_interval(run_dir, tmp_path):
    straight = Scenario(max_steps=40, run_dir=tmp_path / "straight").run(
        _stopper(monitor="loss", mode="min", every_n_steps=4, patience=0, min_delta=0.01)
    )
    first = Scenario(max_steps=6, run_dir=run_dir).run(
        _stopper(monitor="loss", mode="min", every_n_steps=4, patience=0, min_delta=0.01)
    )
    resumed = first.resume(max_steps=40)
    assert resumed.trainer.callbacks[-1].best == straight.trainer.callbacks[-1].best
    assert resumed.step == straight.step


def test_an_unknown_monitor_is_a_one_line_error_naming_the_metrics(run_dir):
    outcome = Scenario(max_steps=10, run_dir=run_dir, eval_every_n_steps=2).run(_stopper(monitor="val_los"))
    assert isinstance(outcome.exception, ValueError)
    assert str(outcome.exception) == (
        "EarlyStoppingCallback: monitor 'val_los' is not among the eval metrics; pick one of ['val_loss']"
    )


def test_watching_eval_metrics_without_evaluation_is_a_one_line_error(run_dir):
    outcome = Scenario(max_steps=10, run_dir=run_dir).run(_stopper())
    assert isinstance(outcome.exception, ValueError) and "pass eval_every_n_steps" in str(outcome.exception)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"patience": -1}, "patience must be an integer >= 0"),
        ({"mode": "lowest"}, "mode must be 'min' or 'max'"),
        ({"min_delta": -0.1}, "min_delta must be a number >= 0"),
        ({"monitor": ""}, "monitor must be a metric name"),
        ({"every_n_steps": 0}, "every_n_steps must be a positive integer"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        EarlyStoppingCallback(**{"monitor": "val_loss", **kwargs})
    assert "\n" not in str(info.value)


def test_with_max_steps_none_early_stopping_ends_the_run_without_a_warning(run_dir, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="emergence"):
        outcome = Scenario(max_steps=None, run_dir=run_dir, eval_every_n_steps=2).run(_stopper())
    assert outcome.stop_reason == "early_stopping" and outcome.step == 8
    assert "no callback can stop the run" not in caplog.text


def test_an_early_stopped_run_run_again_stops_at_once(run_dir):
    """Issue 19, item 6: resumed with "auto" (a Kaggle "run all"), it trained on to max_steps (1.84M steps)."""
    stopped = Scenario(max_steps=40, run_dir=run_dir, eval_every_n_steps=2).run(_stopper())
    again = stopped.resume(max_steps=40)
    assert again.trainer.resumed_from.kind == "final" and again.trainer.resumed_from.step == 8
    assert again.stop_reason == "early_stopping" and again.step == 8


@pytest.mark.parametrize(
    "state, key",
    [({"wait": "3"}, "'wait'"), ({"best": float("nan")}, "'best'"), ({"stopped_step": -1}, "'stopped_step'"), ([], "")],
)
def test_restored_state_of_the_wrong_type_is_a_one_line_error(state, key):
    from emergence.errors import CorruptCheckpointError

    with pytest.raises(CorruptCheckpointError, match=f"EarlyStoppingCallback: the checkpoint's {key}.*another"):
        EarlyStoppingCallback("val_loss").load_state_dict(state)
