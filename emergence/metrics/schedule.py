"""Every: the one place that decides whether a periodic action is due (by steps, by seconds, or both).

Steps count like the Trainer's evaluation: an action every n steps is due at the first
call boundary at or past each multiple of n, so `steps_per_call` need not divide n.
Reading it costs an integer comparison and, with a seconds interval, one clock read.
"""
from __future__ import annotations

import time
from collections.abc import Callable


class Every:
    """Due every `steps` steps and/or every `seconds` seconds since the last `done()`.

    Args:
        steps: step interval, or None.
        seconds: wall-clock interval, or None.
        clock: monotonic seconds (inject a fake one in tests).
        owner: names the caller in error messages.
    """

    def __init__(self, steps: int | None, seconds: float | None, clock: Callable[[], float] = time.monotonic,
                 owner: str = "interval") -> None:
        check_interval(f"{owner}: every_n_steps", steps, integer=True)
        check_interval(f"{owner}: every_n_seconds", seconds, integer=False)
        self.steps = steps
        self.seconds = seconds
        self.clock = clock
        self.last_step = 0
        self.last_time = clock()

    def done(self, step: int) -> None:
        """The action ran at `step` (or counting starts there): the next one is an interval away."""
        self.last_step = step
        self.last_time = self.clock()

    def due(self, step: int) -> bool:
        """True when a step multiple was crossed or the time interval passed since `done()`."""
        if self.steps is not None and step // self.steps > self.last_step // self.steps:
            return True
        return self.seconds is not None and self.clock() - self.last_time >= self.seconds


def check_interval(name: str, value: int | float | None, *, integer: bool) -> None:
    """A one-line error for an interval that is not None or positive (an integer for steps)."""
    if value is None:
        return
    if integer and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    if not integer and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
        raise ValueError(f"{name} must be positive seconds or None, got {value!r}")
