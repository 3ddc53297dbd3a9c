"""CallTimer: how long a train call really takes on the device, without copying anything to the host.

`on_train_call_end` fires when a call is queued, not when it has run, so host time
between hooks says little until the dispatch queue is full. The timer follows the
calls in flight (`InFlight`) and takes the time between successive observed
completions as the cost of the steps in between.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emergence.callbacks._in_flight import InFlight

SMOOTHING = 0.3


class CallTimer:
    """A running estimate of device seconds per train step, from observed completions."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seconds_per_step: float | None = None
        self._calls = InFlight()
        self._done: tuple[int, float] = (0, 0.0)
        self._started = False

    def dispatched(self, step: int, steps: int, metrics: Any) -> None:
        """A call of `steps` steps ending at `step` was queued."""
        if not self._started:  # the first call: compiled already, the device starts on it now
            self._started = True
            self._done = (step - steps, self.clock())
        if not self._calls.add(step, metrics):  # nothing to watch: host time, exact only when host-bound
            self._complete(step)
        self._complete(self._calls.poll())

    def wait(self, limit: int) -> None:
        """Block until at most `limit` calls are in flight (recording what finished)."""
        self._complete(self._calls.wait(limit))

    def pending_seconds(self, step: int) -> float:
        """Device time still queued ahead of a call ending at `step`."""
        if self.seconds_per_step is None:
            return 0.0
        done_step, done_at = self._done
        return max(0.0, (step - done_step) * self.seconds_per_step - (self.clock() - done_at))

    def _complete(self, step: int | None) -> None:
        done_step, done_at = self._done
        if step is None or step <= done_step:
            return
        now = self.clock()
        rate = (now - done_at) / (step - done_step)
        previous = self.seconds_per_step
        self.seconds_per_step = rate if previous is None else previous + SMOOTHING * (rate - previous)
        self._done = (step, now)
