"""Rotation keeps exactly keep_last periodic + top-k best + every emergency checkpoint."""

from __future__ import annotations

import pytest

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import list_checkpoints
from emergence.testing import toy_task


def _names(trainer, kind):
    return [r.step for r in list_checkpoints(trainer.checkpoint_dir) if r.kind == kind]


class EmergencyAt(Callback):
    """Saves an emergency checkpoint at given steps, like the signal callback does."""

    def __init__(self, steps):
        self.steps = set(steps)

    def on_train_call_end(self, trainer, metrics):
        if trainer.step in self.steps:
            trainer.save_checkpoint("emergency", reason="test")


def test_keeps_last_n_periodic_and_never_touches_emergency(tmp_path):
    trainer = Trainer(
        toy_task(),
        [EmergencyAt([7, 23]), CheckpointCallback(every_n_steps=5, keep_last=3)],
        max_steps=40,
        run_dir=tmp_path,
        resume=None,
    )
    trainer.fit()
    assert _names(trainer, "periodic") == [30, 35, 40]
    assert _names(trainer, "emergency") == [7, 23]
    assert _names(trainer, "final") == [40]


class FeedMetric(Callback):
    """Replaces eval metrics by a scripted series so top-k order is known."""

    def __init__(self, values):
        self.values = values

    def on_validation_end(self, trainer, metrics):
        metrics["val_loss"] = self.values[trainer.step]


@pytest.mark.parametrize("mode, kept", [("min", [10, 30]), ("max", [20, 40])])
def test_top_k_evicts_in_metric_order(tmp_path, mode, kept):
    values = {10: 0.5, 20: 0.9, 30: 0.1, 40: 0.7}
    checkpoint = CheckpointCallback(monitor="val_loss", mode=mode, save_top_k=2, save_final=False)
    trainer = Trainer(
        toy_task(), [FeedMetric(values), checkpoint], max_steps=40, run_dir=tmp_path, resume=None, eval_every_n_steps=10
    )
    trainer.fit()
    assert _names(trainer, "best") == kept
    best_step = min(kept, key=values.get) if mode == "min" else max(kept, key=values.get)
    assert checkpoint.best_checkpoint_path(trainer).name == f"best_step_{best_step}.safetensors"


def test_top_k_bookkeeping_survives_resume(tmp_path):
    values = {10: 0.5, 20: 0.9, 30: 0.1, 40: 0.7, 50: 0.3, 60: 0.05}

    def run(max_steps):
        checkpoint = CheckpointCallback(every_n_steps=10, keep_last=1, monitor="val_loss", save_top_k=2)
        trainer = Trainer(
            toy_task(), [FeedMetric(values), checkpoint], max_steps=max_steps, run_dir=tmp_path, eval_every_n_steps=10
        )
        trainer.fit()
        return trainer, checkpoint

    run(40)
    trainer, checkpoint = run(60)
    assert [e["step"] for e in checkpoint.best] == [60, 30]
    assert _names(trainer, "best") == [30, 60]
    assert _names(trainer, "periodic") == [60]


def test_time_based_saves_use_the_injected_clock(scenario, fake_clock):
    checkpoint = CheckpointCallback(every_n_seconds=10, keep_last=None, clock=fake_clock)
    outcome = scenario.but(max_steps=9, seconds_per_call=4.0, resume=None).run([checkpoint])
    assert outcome.stop_reason == "max_steps" and _names(outcome.trainer, "periodic") == [3, 6, 9]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every_n_steps": 0}, "every_n_steps must be a positive integer"),
        ({"every_n_seconds": -1}, "every_n_seconds must be positive"),
        ({"keep_last": 0}, "keep_last must be a positive integer"),
        ({"mode": "median"}, "mode must be 'min' or 'max'"),
        ({"save_top_k": 2}, "save_top_k needs monitor"),
    ],
)
def test_bad_checkpoint_callback_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CheckpointCallback(**kwargs)


def test_unknown_monitor_names_the_available_metrics(tmp_path):
    trainer = Trainer(
        toy_task(),
        [CheckpointCallback(monitor="accuracy")],
        max_steps=2,
        run_dir=tmp_path,
        resume=None,
        eval_every_n_steps=1,
    )
    with pytest.raises(KeyError, match=r"monitor 'accuracy' is not an eval metric; pick one of \['val_loss'\]"):
        trainer.fit()
