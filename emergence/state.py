"""TrainState: the one pytree a run is made of.

The whole run is a pure function of the config, the seed and this pytree, which is
what makes resume exact: a checkpoint is this state plus callback bookkeeping.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class TrainState:
    """The state a Task carries from one `train_step` to the next.

    `step` counts completed train steps (on device, int32); `rng` is a typed PRNG key;
    `extra` holds whatever else the task needs (per-agent params, env state, data
    position) and is checkpointed like the rest.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    extra: Any = None

    @classmethod
    def create(cls, params: Any, opt_state: Any, rng: jax.Array, extra: Any = None) -> "TrainState":
        """A state at step 0."""
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state, rng=rng, extra=extra)
