"""The train calls in flight: one tracker per Trainer (`trainer.calls`), read by every callback that needs it.

JAX dispatch is asynchronous: the host returns from a jitted call at once and may run
far ahead of the device (about 30 calls on CPU before it blocks), so `on_train_call_end`
fires when a call is queued, not when it has run. Anything that must happen soon after
it is asked for (an emergency save, a stop before a deadline) needs to know how much
device work is queued, and how long a call really takes.

`CallTracker` keeps each call's metric arrays (no copy), checks them with `is_ready()`
(non-blocking) when read, and `wait(limit)` blocks on the oldest until at most `limit`
calls are unfinished: a wait, never a transfer. The Trainer offers it the call when a
hook is due and some callback asked to `watch()` (the signal and time-budget callbacks
do): an attribute set; the call is taken in only when someone reads the tracker, so a
run without watchers, or whose watchers are not due, pays nothing. `StepRate` turns the
completions the tracker saw into device seconds per step on a consumer's own clock (a
fake one in tests): a few comparisons per call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import jax

SMOOTHING = 0.3


class CallTracker:
    """The queue of unfinished train calls, oldest first, and the newest step known to have finished."""

    def __init__(self) -> None:
        self.watched = False
        self._completed = 0
        self._started_from: int | None = None
        self._calls: deque[tuple[int, list[Any]]] = deque()
        self._offered: tuple[int, int, Any] | None = None

    def __len__(self) -> int:
        self._take_offered()
        return len(self._calls)

    @property
    def completed(self) -> int:
        """The newest step known to have finished on the device."""
        self._take_offered()
        return self._completed

    @property
    def started_from(self) -> int | None:
        """The step the first tracked call started from (None before one)."""
        self._take_offered()
        return self._started_from

    def offer(self, step: int, steps: int, metrics: Any) -> None:
        """The Trainer's latest call (an attribute set): taken in as `dispatched` when the tracker is next read."""
        self._offered = (step, steps, metrics)

    def _take_offered(self) -> None:
        if self._offered is not None:
            offered, self._offered = self._offered, None
            self.dispatched(*offered)

    def watch(self) -> None:
        """Ask the Trainer to feed this tracker every call (from `setup`)."""
        self.watched = True

    def dispatched(self, step: int, steps: int, metrics: Any) -> None:
        """The Trainer queued a call of `steps` steps ending at `step`: track it by its metrics, note what finished."""
        if self._started_from is None:  # the first call: compiled already, the device starts on it now
            self._started_from = self._completed = step - steps
        leaves = [leaf for leaf in jax.tree.leaves(metrics) if hasattr(leaf, "is_ready")]  # a host float is done
        if not leaves:  # nothing to watch: the host's view is all there is
            self._completed = step
            return
        self._calls.append((step, leaves))
        self._poll()

    def wait(self, limit: int) -> bool:
        """Block until at most `limit` calls are unfinished (the device keeps the rest queued); True if it waited."""
        if len(self) <= limit:
            return False
        while len(self._calls) > limit:
            jax.block_until_ready(self._calls[0][1])
            self._poll()
        return True

    def _poll(self) -> None:
        while self._calls and all(leaf.is_ready() for leaf in self._calls[0][1]):
            self._completed = self._calls.popleft()[0]


class StepRate:
    """A running estimate of device seconds per train step, from the completions a `CallTracker` saw."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seconds_per_step: float | None = None
        self._done: tuple[int, float] | None = None

    def observe(self, calls: CallTracker) -> None:
        """Take in the calls finished since the last look (the time between completions is their cost)."""
        if self._done is None:
            if calls.started_from is None:
                return
            self._done = (calls.started_from, self.clock())
        done_step, done_at = self._done
        if calls.completed <= done_step:
            return
        now = self.clock()
        rate = (now - done_at) / (calls.completed - done_step)
        previous = self.seconds_per_step
        self.seconds_per_step = rate if previous is None else previous + SMOOTHING * (rate - previous)
        self._done = (calls.completed, now)

    def pending_seconds(self, step: int) -> float:
        """Device time still queued ahead of a call ending at `step`."""
        if self.seconds_per_step is None or self._done is None:
            return 0.0
        done_step, done_at = self._done
        return max(0.0, (step - done_step) * self.seconds_per_step - (self.clock() - done_at))
