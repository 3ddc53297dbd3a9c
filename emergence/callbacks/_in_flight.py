"""InFlight: the train calls dispatched but not yet finished on the device, known by their metrics.

JAX dispatch is asynchronous: the host returns from a jitted call at once and may run
far ahead of the device (about 30 calls on CPU before it blocks). Anything that must
happen soon after it is asked for (an emergency save, a stop before a deadline) first
waits for that queue to drain. This keeps each call's metric arrays (no copy), checks
them with `is_ready()` (non-blocking), and `wait(limit)` blocks on the oldest until at
most `limit` calls are unfinished: a wait, never a transfer, and with a limit of 2 the
device always has the next call queued.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import jax


class InFlight:
    """A queue of unfinished train calls, oldest first."""

    def __init__(self) -> None:
        self._calls: deque[tuple[int, list[Any]]] = deque()

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, step: int, metrics: Any) -> bool:
        """Track the call ending at `step` by its metrics; False when it has none to watch."""
        leaves = jax.tree.leaves(metrics)
        if leaves:
            self._calls.append((step, leaves))
        return bool(leaves)

    def poll(self) -> int | None:
        """Forget the calls that have finished; the step of the newest of them, if any."""
        finished = None
        while self._calls and all(leaf.is_ready() for leaf in self._calls[0][1]):
            finished = self._calls.popleft()[0]
        return finished

    def wait(self, limit: int) -> int | None:
        """Block until at most `limit` calls are unfinished; the step of the newest finished, if any."""
        finished = self.poll()
        while len(self._calls) > limit:
            jax.block_until_ready(self._calls[0][1])
            finished = self.poll()
        return finished
