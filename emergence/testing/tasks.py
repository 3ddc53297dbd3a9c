"""Tasks small enough for callback tests: the toy regression task, and one that diverges at a chosen step.

`DivergingTask` puts NaN into the params and the loss at step k of the run's original
trajectory: its `init_state` replays the first k-1 steps once to learn the rng the state
holds there, and `train_step` poisons only a state carrying exactly that rng. A
rollback that folds a fresh key into the rng (what `NonFiniteGuardCallback` does)
escapes it; one that does not, or `every_time=True`, meets the NaN again.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from emergence.examples.regression import RegressionTask


def toy_task(**overrides: Any) -> RegressionTask:
    """A `RegressionTask` small enough to compile and run in well under a second."""
    settings = {"hidden": (8,), "batch_size": 16, "dataset_size": 256, **overrides}
    return RegressionTask(**settings)


class DivergingTask:
    """Wraps a task whose state has `step`, `params` and `rng` (default: `toy_task()`); NaN at step `at_step`.

    Args:
        at_step: the step whose update turns the params and the loss into NaN (>= 1).
        every_time: poison every time step `at_step` is reached, whatever the rng.
        task: the task to wrap.
    """

    def __init__(self, at_step: int, *, every_time: bool = False, task: Any = None) -> None:
        if isinstance(at_step, bool) or not isinstance(at_step, int) or at_step < 1:
            raise ValueError(f"DivergingTask: at_step must be a step >= 1, got {at_step!r}")
        self.at_step = at_step
        self.every_time = every_time
        self.inner = task if task is not None else toy_task()
        self.name = getattr(self.inner, "name", "diverging")
        self._poisoned_rng: jax.Array | None = None

    def config(self) -> dict[str, Any]:
        config = getattr(self.inner, "config", None)
        return {**(config() if callable(config) else {}), "diverge_at_step": self.at_step}

    def init_state(self, rng: jax.Array) -> Any:
        state = self.inner.init_state(rng)
        replay = jax.jit(lambda s: self.inner.train_step(s)[0])
        walk = state
        for _ in range(self.at_step - 1):
            walk = replay(walk)
        self._poisoned_rng = jax.random.key_data(walk.rng)
        return state

    def train_step(self, state: Any) -> tuple[Any, dict[str, jax.Array]]:
        new_state, metrics = self.inner.train_step(state)
        poison = state.step + 1 == self.at_step
        if not self.every_time:
            poison = poison & jnp.all(jax.random.key_data(state.rng) == self._poisoned_rng)
        params = jax.tree.map(lambda leaf: jnp.where(poison, jnp.nan, leaf), new_state.params)
        metrics = {**metrics, "loss": jnp.where(poison, jnp.nan, metrics["loss"])}
        return new_state.replace(params=params), metrics

    def eval_step(self, state: Any) -> dict[str, jax.Array]:
        return self.inner.eval_step(state)
