"""The jitted train call: `steps` fused train steps in one compiled program, built once per size.

`TrainCalls` belongs to a Trainer and a task. It compiles one call per number of
fused steps (the last call of a run may be shorter), over the task's `train_step`
alone or over a stack of batches (`train_data`), placed on the Trainer's mesh when
there is one, and checks the task contract (`emergence.contract`) once, before the
first call it hands out. The check traces the step (tens of milliseconds): it runs
once per task, not once per `fit()`, so a script calling `fit()` in a loop pays it once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from emergence.contract import check_eval_step, check_train_step
from emergence.data.fused import steps_over_batches
from emergence.data.placement import BatchPlacement
from emergence.metrics.totals import fold_metrics
from emergence.parallel.mesh import DataParallel
from emergence.task import Metrics, Task


def steps_in_one_call(train_step: Callable, steps: int) -> Callable:
    """`fn(state) -> (state, metrics)` running `steps` train steps; metrics averaged over them on device."""
    if steps == 1:
        return train_step

    def many(state: Any) -> tuple[Any, Metrics]:
        state, metrics = jax.lax.scan(lambda s, _: train_step(s), state, None, length=steps)
        return state, jax.tree.map(lambda m: m.mean(axis=0), metrics)

    return many


def folding_metrics(call: Callable, tags: tuple[str, ...], steps: int) -> Callable:
    """`fn(state, totals, *batch) -> (state, metrics, totals)`: `call` with its metrics folded into the running
    totals (`emergence.metrics.totals`), so no logger handles a call's metrics on the host."""
    fold = fold_metrics(tags)

    def folding(state: Any, totals: jax.Array, *batch: Any) -> tuple[Any, Metrics, jax.Array]:
        state, metrics = call(state, *batch)
        return state, metrics, fold(totals, metrics, steps)

    return folding


class TrainCalls:
    """The compiled train calls of one task, by number of fused steps, and the contract checked once."""

    def __init__(self, task: Task, parallel: DataParallel | None) -> None:
        self.task = task
        self.parallel = parallel
        self.metric_tags: tuple[str, ...] | None = None  # the train step's metrics, from the contract check
        self._checked: set[bool] = set()  # with a batch or without
        self._calls: dict[tuple[int, bool, bool], Callable] = {}

    def get(self, steps: int, with_batches: bool = False, folding: bool = False) -> Callable:
        """The call of `steps` fused steps: `call(state)`, or `call(state, batches)` when `with_batches`; with
        `folding`, `call(state, totals[, batches]) -> (state, metrics, totals)` (see `folding_metrics`)."""
        key = (steps, with_batches, folding)
        if key not in self._calls:
            self._calls[key] = self._compile(*key)
        return self._calls[key]

    def _compile(self, steps: int, with_batches: bool, folding: bool) -> Callable:
        train_step = self.task.train_step
        call = steps_over_batches(train_step, steps) if with_batches else steps_in_one_call(train_step, steps)
        if folding:
            call = folding_metrics(call, self.metric_tags, steps)
        if self.parallel is None:
            return jax.jit(call, donate_argnums=(0, 1) if folding else 0)
        batches = BatchPlacement(self.parallel.mesh).sharding(stacked=steps > 1) if with_batches else None
        return self.parallel.jit_step(call, batches, totals=folding)

    def check(self, state: Any, batch: Any = None, stacked: bool = False, eval_too: bool = True) -> None:
        """The task contract for `state` (and one step's `batch`), once per task: one-line errors for a step
        that returns the wrong thing. `eval_too`: also `eval_step(state)`, when the task has one."""
        if (batch is not None) in self._checked:
            return
        one = None if batch is None else jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[stacked:], x.dtype), batch)
        metrics = check_train_step(self.task.train_step, state, one)
        self.metric_tags = tuple(sorted(metrics))
        if eval_too and callable(getattr(self.task, "eval_step", None)):
            check_eval_step(self.task.eval_step, state)
        self._checked.add(batch is not None)
