"""The loop: hook order, stop requests, fused steps, eval, and no host sync on the hot path."""

from __future__ import annotations

import logging

import jax
import pytest

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback
from emergence.testing import toy_task


class EveryHook(Callback):
    def __init__(self):
        self.events = []

    def setup(self, trainer):
        self.events.append("setup")

    def on_fit_start(self, trainer):
        self.events.append("on_fit_start")

    def on_train_call_end(self, trainer, metrics):
        self.events.append(("call", trainer.step))

    def on_validation_end(self, trainer, metrics):
        self.events.append(("eval", trainer.step, sorted(metrics)))

    def on_save_checkpoint(self, trainer, ref):
        self.events.append(("save", ref.kind, ref.step))

    def on_exception(self, trainer, exc):
        self.events.append(("exception", type(exc).__name__))

    def on_fit_end(self, trainer, reason):
        self.events.append(("end", reason))

    def teardown(self, trainer):
        self.events.append("teardown")


def test_hooks_fire_in_order_with_fused_steps_and_eval(tmp_path):
    """The CheckpointCallback comes first in the list, yet its save is written after the call's hooks.

    Synchronous saves, so the order is exact (an async save's hook fires once durable: test_async_checkpoint)."""
    recorder = EveryHook()
    trainer = Trainer(
        toy_task(),
        [CheckpointCallback(every_n_steps=8), recorder],
        max_steps=10,
        steps_per_call=4,
        run_dir=tmp_path,
        resume=None,
        eval_every_n_steps=5,
        async_checkpoint=False,
    )
    trainer.fit()
    assert recorder.events == [
        "setup",
        "on_fit_start",
        ("call", 4),
        ("call", 8),
        ("eval", 8, ["val_loss"]),
        ("save", "periodic", 8),  # at the save point, after every hook of the call and the evaluation
        ("call", 10),
        ("eval", 10, ["val_loss"]),
        ("save", "final", 10),
        ("end", "max_steps"),
        "teardown",
    ]


def test_only_overridden_hooks_are_dispatched(tmp_path):
    silent = Callback()
    trainer = Trainer(toy_task(), [silent, EveryHook()], max_steps=1, run_dir=tmp_path)
    dispatched = {hook: [m.__self__ for m in methods] for hook, methods in trainer._hooks.items()}
    assert all(silent not in owners for owners in dispatched.values())
    assert len(dispatched["on_train_call_end"]) == 1 and dispatched["on_load_checkpoint"] == []


def test_stop_request_is_honoured_at_the_next_call_boundary(scenario):
    recorder = EveryHook()
    outcome = (
        scenario.but(max_steps=100, steps_per_call=3, resume=None)
        .stop_at(6, "time_budget")
        .stop_at(6, "second reason is ignored")
        .run([recorder])
    )
    assert outcome.step == 6 and int(outcome.state.step) == 6
    assert outcome.stop_reason == "time_budget" and recorder.events[-2] == ("end", "time_budget")


def test_the_hot_path_never_transfers_device_to_host(tmp_path):
    trainer = Trainer(toy_task(), [EveryHook()], max_steps=20, steps_per_call=2, run_dir=tmp_path, resume=None)
    with jax.transfer_guard_device_to_host("disallow"):
        trainer.fit()
    assert trainer.step == 20


def test_resume_auto_without_checkpoint_starts_fresh_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="emergence")
    trainer = Trainer(toy_task(), [], max_steps=2, run_dir=tmp_path)
    trainer.fit()
    assert trainer.resumed_from is None and trainer.step == 2
    assert "starting fresh" in caplog.text


def test_resuming_a_finished_run_returns_without_training(tmp_path):
    Trainer(toy_task(), [CheckpointCallback()], max_steps=5, run_dir=tmp_path).fit()
    recorder = EveryHook()
    trainer = Trainer(toy_task(), [CheckpointCallback(), recorder], max_steps=5, run_dir=tmp_path)
    state = trainer.fit()
    assert int(state.step) == 5 and trainer.resumed_from.kind == "final"
    assert recorder.events == ["setup", "on_fit_start", ("end", "max_steps"), "teardown"]


def test_an_exception_fires_on_exception_and_on_fit_end_then_propagates(scenario):
    recorder, boom = EveryHook(), RuntimeError("boom")
    outcome = scenario.but(max_steps=10, resume=None).raise_at(3, boom).run([CheckpointCallback(), recorder])
    assert outcome.exception is boom
    assert recorder.events[-3:] == [("exception", "RuntimeError"), ("end", "exception:RuntimeError"), "teardown"]
    assert outcome.stop_reason == "exception:RuntimeError" and not outcome.trainer.fitting
    assert not list(outcome.trainer.checkpoint_dir.glob("final_*"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_steps": 0}, "max_steps must be a positive integer"),
        ({"max_steps": 5, "steps_per_call": 0}, "steps_per_call must be a positive integer"),
        ({"max_steps": 5, "eval_every_n_steps": -1}, "eval_every_n_steps must be a positive integer"),
    ],
)
def test_bad_trainer_arguments_are_one_line_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Trainer(toy_task(), [], run_dir=tmp_path, **kwargs)


def test_eval_without_eval_step_and_bad_callbacks_are_refused(tmp_path):
    class NoEval:
        def init_state(self, rng): ...
        def train_step(self, state): ...

    with pytest.raises(ValueError, match="no eval_step"):
        Trainer(NoEval(), [], max_steps=1, eval_every_n_steps=1)
    with pytest.raises(ValueError, match="share state_key"):
        Trainer(toy_task(), [CheckpointCallback(), CheckpointCallback()], max_steps=1)
    with pytest.raises(TypeError, match="not an emergence Callback"):
        Trainer(toy_task(), [object()], max_steps=1)
