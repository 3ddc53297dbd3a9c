"""Env steps counted in the state: what a lab run's length is measured in, whatever the update size was.

The Trainer counts updates; the lab's lengths are env steps (`--train.total-steps`), and
one update is `num_envs * rollout_len` of them. A resumed run may change `rollout_len`
(it is not structural), so env steps cannot be derived from the update count: each world
counts its own steps in `state.extra["world_steps"]` (int32 per world, like the world's
other counters), and env steps are their sum. `run_length` turns the env-step budget into
the run's `max_steps`, once the state is known (the Trainer's `max_steps=` rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

WORLD_STEPS = "extra/world_steps"
WORLD_TIME = "extra/env/t"  # every world's own clock: its shape is the worlds' shape, stacked or not


def env_steps_done(state: Any) -> int:
    """Env steps a state has taken (a host read of one small array: at `fit()` start, never per call).

    A sweep's state stacks its runs: their counts are equal (they share `rollout_len`), so one run's.
    """
    world_steps = np.asarray(jax.device_get(state.extra["world_steps"]), dtype=np.int64)
    return int(world_steps.reshape(-1, world_steps.shape[-1])[0].sum())


@dataclass(frozen=True)
class RunLength:
    """`max_steps` of a lab run from its env-step budget: the updates done, plus the updates left at today's size."""

    total_env_steps: int
    env_steps_per_update: int

    def __call__(self, state: Any) -> int:
        done_updates = int(np.asarray(jax.device_get(state.step)).reshape(-1)[0])
        left = max(0, self.total_env_steps - env_steps_done(state))
        return max(1, done_updates + math.ceil(left / self.env_steps_per_update))


def upgrade_world_steps(arrays: dict[str, np.ndarray], rollout_len: int) -> dict[str, np.ndarray]:
    """A checkpoint written before worlds counted their steps, with the count every update of `rollout_len`
    steps gives (the best there is: such a run could not have changed `rollout_len` and been counted right)."""
    if WORLD_STEPS in arrays or WORLD_TIME not in arrays:
        return arrays
    updates = np.asarray(arrays["step"], dtype=np.int64)
    shape = arrays[WORLD_TIME].shape
    per_world = np.broadcast_to((updates * rollout_len).reshape(updates.shape + (1,)), shape)
    return {**arrays, WORLD_STEPS: per_world.astype(np.int32)}
