"""The time budget measures durations on a monotonic clock and never counts compile time as a call (item 9)."""

from __future__ import annotations

from types import SimpleNamespace

from emergence.callbacks import TimeBudgetCallback
from emergence.calls import CallTracker
from emergence.testing import FakeClock


class _Queued:
    """A metric the device has not produced yet (the call is still running)."""

    def is_ready(self) -> bool:
        return False


def _trainer():
    stops = []
    trainer = SimpleNamespace(calls=CallTracker(), step=0, steps_per_call=1, state={}, stops=stops)
    trainer.request_stop = stops.append
    return trainer


def test_a_step_of_the_wall_clock_moves_nothing():
    wall, steady = FakeClock(start=1_000_000.0), FakeClock()
    budget = TimeBudgetCallback(max_duration=100, margin=1, clock=wall, monotonic=steady)
    budget.setup(_trainer())
    wall.advance(3600)  # NTP, a suspended VM, a user setting the clock
    assert budget.remaining == 100
    steady.advance(30)
    assert budget.remaining == 70


def test_the_first_calls_compile_time_is_not_a_call():
    """A 25 s budget stopped after one call: the first call's 20 s compile was taken for a call's cost."""
    clock = FakeClock(start=1_000_000.0)
    budget = TimeBudgetCallback(max_duration=25, margin=1, clock=clock)
    trainer = _trainer()
    budget.setup(trainer)
    budget.on_fit_start(trainer)
    clock.advance(20)  # compiling, inside the first dispatch
    trainer.step = 1
    trainer.calls.dispatched(1, 1, {"loss": _Queued()})  # the first call runs on the device
    budget.on_train_call_end(trainer, {})
    assert budget.call_seconds == 0 and trainer.stops == []
    clock.advance(0.5)
    assert budget.call_seconds == 0.5  # measured from the first dispatch, not from fit() start
