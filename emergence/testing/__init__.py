"""The callback test kit: test your own callback against a real `fit()`, in seconds.

    from emergence.testing import Scenario

    outcome = Scenario(max_steps=20).signal_at(7).clock_jump_at(5, 3600).run([MyCallback(clock=...)])
    assert outcome.stop_reason == "signal:SIGTERM"

- `Scenario` drives a real `Trainer.fit()` on a tiny task with scripted events (a signal
  at step k, clock jumps, a stop request, a checkpoint write failing with ENOSPC, an
  exception at step k, NaN at step k, a resume) and returns an `Outcome`: hooks fired in
  order, files on disk, checkpoints, stop reason, the exception and the exit code.
- `toy_task`, `DivergingTask`: tasks that compile and run in well under a second.
- `FakeClock`: time that moves only when told to; `fire`: call one hook by hand.
- A pytest plugin (installed with the package) adds the fixtures `fake_clock`,
  `run_dir`, `tiny_trainer` and `scenario`; see `emergence.testing.plugin` and docs/testing.md.
"""

from __future__ import annotations

from typing import Any

from emergence.testing.clock import FakeClock
from emergence.testing.scenario import HookCall, Outcome, Scenario
from emergence.testing.tasks import DivergingTask, toy_task

__all__ = ["DivergingTask", "FakeClock", "HookCall", "Outcome", "Scenario", "fire", "toy_task"]


def fire(trainer: Any, hook: str, *args: Any) -> None:
    """Call `hook` on every callback of `trainer`, in order, as the Trainer would."""
    for callback in trainer.callbacks:
        getattr(callback, hook)(trainer, *args)
