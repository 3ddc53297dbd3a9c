"""One jitted call over K batches: `train_step(state, batch)` scanned over a stack of K, metrics averaged.

The data twin of the Trainer's fused call: `steps == 1` is the step itself on one
batch; K > 1 scans the step over the leading axis of a `stack` of K batches (as a
`Prefetcher` prepares them), so the K batches cross to the device in one transfer and
the loop dispatches one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


def steps_over_batches(train_step: Callable, steps: int) -> Callable:
    """`fn(state, batches) -> (state, metrics)`: `train_step` once per batch of the stack (or once, unstacked)."""
    if steps == 1:
        return train_step

    def many(state: Any, batches: Any) -> tuple[Any, Any]:
        state, metrics = jax.lax.scan(train_step, state, batches, length=steps)
        return state, jax.tree.map(lambda m: m.mean(axis=0), metrics)

    return many
