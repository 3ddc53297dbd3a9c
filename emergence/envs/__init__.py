"""JAX environments: the foraging world where the emergence lab's agents live."""

from emergence.envs.foraging import (
    ACTION_DELTAS,
    NUM_ACTIONS,
    EnvParams,
    EnvState,
    observe,
    reset,
    reset_state,
    step,
)
from emergence.envs.render import render

__all__ = ["ACTION_DELTAS", "NUM_ACTIONS", "EnvParams", "EnvState", "observe", "render", "reset", "reset_state", "step"]
