"""JAX environments: the foraging world where the emergence lab's agents live."""

from emergence.envs.foraging import (
    ACTION_DELTAS,
    NUM_ACTIONS,
    EnvState,
    observe,
    reset,
    reset_state,
    step,
)
from emergence.envs.params import EnvParams, WorldValues, traced_names
from emergence.envs.render import render

__all__ = [
    "ACTION_DELTAS",
    "NUM_ACTIONS",
    "EnvParams",
    "EnvState",
    "WorldValues",
    "observe",
    "render",
    "reset",
    "reset_state",
    "step",
    "traced_names",
]
