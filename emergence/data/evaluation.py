"""Evaluation over a whole finite dataset: each batch's metrics weighted by its size, averaged on the device.

`evaluate_over(eval_call, state, val_data)` runs a jitted `eval_step(state, batch)` on
every batch of one pass over `val_data` and returns the metrics averaged per example
(a batch of 10 counts ten times as much as a batch of 1; a smaller last batch is fine
here, at the cost of one more compile). Sums stay on the device: nothing is fetched
until a callback reads the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax

from emergence.data.errors import DataError
from emergence.data.placement import BatchPlacement
from emergence.data.source import BatchSource
from emergence.data.stacking import host_arrays


def batch_size(batch: Any) -> int:
    """The leading axis every leaf of `batch` shares (a scalar leaf has none and is refused)."""
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in jax.tree.leaves(batch)}
    if len(sizes) != 1 or None in sizes:
        raise DataError(
            f"a val_data batch's leaves have leading axes {sorted(sizes, key=str)}; every leaf of a batch needs the "
            "same leading batch axis, so its metrics can be weighted by its size"
        )
    return sizes.pop()


def evaluate_over(
    eval_call: Callable[[Any, Any], dict[str, jax.Array]],
    state: Any,
    val_data: Iterable[Any],
    placement: BatchPlacement | None = None,
) -> dict[str, jax.Array]:
    """`eval_call(state, batch)`'s metrics over one pass of `val_data`, averaged per example (device arrays)."""
    placement = placement or BatchPlacement()
    totals: dict[str, jax.Array] | None = None
    examples = 0
    for batch in BatchSource(val_data, max_epochs=1, name="val_data"):
        batch = host_arrays(batch, "val_data")
        size = batch_size(batch)
        metrics = eval_call(state, placement.place(batch, stacked=False))
        weighted = {name: value * size for name, value in metrics.items()}
        totals = weighted if totals is None else {name: totals[name] + weighted[name] for name in totals}
        examples += size
    return {name: total / examples for name, total in totals.items()}
