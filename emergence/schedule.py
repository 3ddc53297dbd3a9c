"""Every: the one rule for "is a periodic action due?" (by steps, by seconds, or both).

Checkpoints, metric logging (each tag's interval too), trackers, artifact exports and the
Trainer's evaluation all ask an `Every`. Steps count like this: an action every n steps is
due at the first call boundary at or past each multiple of n after the step it last ran
at, so `steps_per_call` need not divide n. A step-only schedule that is not due costs an
integer comparison; a seconds interval adds one clock read.
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

    def __init__(
        self,
        steps: int | None,
        seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        owner: str = "interval",
    ) -> None:
        check_interval(f"{owner}: every_n_steps", steps, integer=True)
        check_interval(f"{owner}: every_n_seconds", seconds, integer=False)
        self.steps = steps
        self.seconds = seconds
        self.clock = clock
        self.last_step = 0
        self.last_time = clock() if seconds is not None else 0.0
        self._next_step = self._first_due_after(0)

    def done(self, step: int) -> None:
        """The action ran at `step` (or counting starts there): the next one is an interval away."""
        self.last_step = step
        self._next_step = self._first_due_after(step)
        if self.seconds is not None:
            self.last_time = self.clock()

    def due(self, step: int) -> bool:
        """True when a step multiple was crossed or the time interval passed since `done()`."""
        if step >= self._next_step:
            return True
        return self.seconds is not None and self.clock() - self.last_time >= self.seconds

    @property
    def next_step(self) -> float:
        """The first step at which this schedule is due by steps (infinite without a step interval)."""
        return self._next_step

    def due_by_steps(self, step: int) -> bool:
        """True when a multiple of `steps` lies in (last step, `step`]; the clock is not read."""
        return step >= self._next_step

    def _first_due_after(self, last: int) -> float:
        """The one step rule: due at `step` when `step // n > last // n`, i.e. from the next multiple of n on."""
        if self.steps is None:
            return float("inf")
        return (last // self.steps + 1) * self.steps


LOOK_SECONDS = 0.05
"""How late a seconds interval may notice it is due: a clock is read about this often, not at every call."""


class Pace:
    """When to read a clock next, in steps: about every `seconds` of the rate seen between the last two reads.

    A seconds interval (`every_n_seconds`) needs the clock, and reading it at every call of
    a fast loop costs more than the call's own dispatch; so a callback reads it at a step
    `next_look` names, `seconds` of steps later at the pace seen so far (every call until
    two reads are apart in time; a clock that did not move, such as a test's fake one
    between jumps, keeps it at every call). A due interval is noticed at most `seconds`
    (plus one call) late.
    """

    def __init__(self, seconds: float = LOOK_SECONDS) -> None:
        self.seconds = seconds
        self._last: tuple[int, float] | None = None

    def next_look(self, step: int, now: float) -> int:
        """The clock was read at `step` (`now`): the step at which to read it next."""
        stride = 1
        if self._last is not None:
            last_step, last_time = self._last
            if now > last_time and step > last_step:
                stride = max(1, int((step - last_step) / (now - last_time) * self.seconds))
        self._last = (step, now)
        return step + stride


def check_interval(name: str, value: int | float | None, *, integer: bool, required: bool = False) -> None:
    """A one-line error for an interval that is not positive (an integer for steps), or None where `required`."""
    if value is None and not required:
        return
    optional = "" if required else " or None"
    if integer and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer{optional}, got {value!r}")
    if not integer and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
        raise ValueError(f"{name} must be positive seconds{optional}, got {value!r}")
