"""Per-run hyperparameters: the PPOConfig values that only enter the computation, as one small pytree.

`PPOTask.train_step_with(state, hyper)` reads these from `hyper` instead of from its
config, so a vmapped sweep (`emergence.lab.sweep`) can hand each run its own values as
traced float32 scalars. A single run passes `hyperparameters(config)`: Python floats,
the very constants the config holds, so its program and its numbers are unchanged.

The world's traced values (`EnvParams` fields marked traced: energies, costs, the
ceiling, food regrowth) travel in the same mapping under their field names and reach
the rules as `world_values(hyper)`.

Everything else in `PPOConfig` fixes shapes or scan lengths, so it is the same for
every run of one compiled program, with one exception: a sweep may switch evolution
off per run. Its state keeps the heads, and
`hyper["evolution"]` (a 0/1 weight, present only then) scales the heads where they act,
the population terms and the birth masking, so a run weighted 0 computes what
`evolution=False` computes alone (`weigh_heads`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from emergence.envs import WorldValues
from emergence.lab.agents.config import PPOConfig, keys_of_kind

TRACED: dict[str, str] = keys_of_kind("traced")
"""Traced name (a PPOConfig field, or an EnvParams field marked traced) -> its `emergence train` dotted key,
for every value a sweep may vary per run; derived from the fields' marks (`agents.config.setting`)."""

Hyper = Mapping[str, float | jax.Array]


def _value(config: PPOConfig, name: str) -> float:
    owner = config.env if TRACED.get(name, "").startswith("env.") else config
    return float(getattr(owner, name))


def hyperparameters(config: PPOConfig) -> dict[str, float]:
    """The traced values of one config, as the Python floats it holds (a single run's `hyper`)."""
    return {name: _value(config, name) for name in TRACED}


def stacked(configs: Sequence[PPOConfig], evolution_weight: bool = False) -> dict[str, jax.Array]:
    """A sweep's `hyper`: a float32 array of shape (runs,) per traced value, and the 0/1 `evolution` weight if asked."""
    names = [*TRACED, "evolution"] if evolution_weight else list(TRACED)
    return {name: jnp.asarray([_value(c, name) for c in configs], jnp.float32) for name in names}


def world_values(hyper: Hyper) -> WorldValues:
    """The world's traced values in `hyper`, as the rules of `emergence.envs` take them."""
    return WorldValues.from_mapping(hyper)


def weigh_heads(heads: Any, hyper: Hyper) -> Any:
    """The per-agent heads as they act: scaled by `hyper["evolution"]` when a sweep sets it, else as they are."""
    weight = hyper.get("evolution")
    return heads if heads is None or weight is None else jax.tree.map(lambda x: weight * x, heads)


def evolution_weight(hyper: Hyper) -> float | jax.Array:
    """`hyper["evolution"]`, or 1.0 (as a Python float: no operation is added) when it is absent."""
    return hyper.get("evolution", 1.0)
