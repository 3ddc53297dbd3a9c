"""Helpers for testing callbacks without a long run: a toy task, a fake clock, hook firing.

The project's own callback tests use these, and users can too:

    trainer = Trainer(toy_task(), [MyCallback(clock=clock)], max_steps=10, run_dir=tmp)
    fire(trainer, "on_fit_start")
"""
from __future__ import annotations

from typing import Any

from emergence.examples.regression import RegressionTask


def toy_task(**overrides: Any) -> RegressionTask:
    """A `RegressionTask` small enough to compile and run in well under a second."""
    settings = {"hidden": (8,), "batch_size": 16, "dataset_size": 256, **overrides}
    return RegressionTask(**settings)


class FakeClock:
    """A clock that moves only when told to: inject it wherever a callback takes `clock=`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        self.now += seconds


def fire(trainer: Any, hook: str, *args: Any) -> None:
    """Call `hook` on every callback of `trainer`, in order, as the Trainer would."""
    for callback in trainer.callbacks:
        getattr(callback, hook)(trainer, *args)
