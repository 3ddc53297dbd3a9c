"""CallTimer: how long a train call really takes on the device, without copying anything to the host.

JAX dispatch is asynchronous: `on_train_call_end` fires when a call is queued, not when
it has run, so host time between hooks says little until the queue is full, and the
queue can hold many calls (about 30 on CPU). The timer keeps the metrics of each call
in flight, polls their `is_ready()` (a non-blocking check) at every hook, and takes the
time between successive completions as the cost of the steps in between. `wait()`
bounds how far the host runs ahead by waiting for the oldest call to finish: a wait,
not a transfer, and with at least two calls queued the device never idles for it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import jax

SMOOTHING = 0.3


class CallTimer:
    """A running estimate of device seconds per train step, from observed completions."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seconds_per_step: float | None = None
        self._in_flight: deque[tuple[int, list[Any]]] = deque()
        self._done: tuple[int, float] | None = None
        self._started = False

    def dispatched(self, step: int, steps: int, metrics: Any) -> None:
        """A call of `steps` steps ending at `step` was queued; watch its metrics."""
        if not self._started:  # the first call: compiled already, the device starts on it now
            self._started = True
            self._done = (step - steps, self.clock())
        leaves = jax.tree.leaves(metrics)
        if leaves:
            self._in_flight.append((step, leaves))
        else:  # nothing to watch: fall back to host time, exact only when the host is the bottleneck
            self._complete(step)
        self.poll()

    def poll(self) -> None:
        """Record calls that finished since the last look (all at once count as one window)."""
        finished = None
        while self._in_flight and all(leaf.is_ready() for leaf in self._in_flight[0][1]):
            finished = self._in_flight.popleft()[0]
        if finished is not None:
            self._complete(finished)

    def wait(self, limit: int) -> None:
        """Block until at most `limit` calls are in flight."""
        while len(self._in_flight) > limit:
            jax.block_until_ready(self._in_flight[0][1])
            self.poll()

    def pending_seconds(self, step: int) -> float:
        """Device time still queued ahead of a call ending at `step`."""
        if self._done is None or self.seconds_per_step is None:
            return 0.0
        done_step, done_at = self._done
        return max(0.0, (step - done_step) * self.seconds_per_step - (self.clock() - done_at))

    def _complete(self, step: int) -> None:
        now = self.clock()
        done_step, done_at = self._done
        if step > done_step:
            rate = (now - done_at) / (step - done_step)
            previous = self.seconds_per_step
            self.seconds_per_step = rate if previous is None else previous + SMOOTHING * (rate - previous)
        self._done = (step, now)
