"""The Task protocol: what a user implements to train something with the Trainer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

from emergence.state import TrainState

Metrics = dict[str, jax.Array]


@runtime_checkable
class Task(Protocol):
    """Anything with `init_state` and a pure, jittable `train_step`.

    Data is the task's business and must derive from the state (env rollouts, or
    indices by `state.step` into in-memory data), so that a run is a pure function of
    config + seed + state. Optional members, looked up with `getattr`:

    - `eval_step(state) -> Metrics`: jittable evaluation; its metrics feed `monitor`.
    - `config() -> dict`: JSON-able settings, saved in every checkpoint and compared
      on resume.
    - `structural_keys: set[str]`: dotted config keys whose change makes a checkpoint
      unusable (e.g. `"hidden"`); resume refuses such changes unless forced.
    - `name: str`: used for the default run directory `runs/<name>`.
    - `upgrade_checkpoint(arrays) -> arrays`: an older checkpoint's arrays (by leaf path,
      e.g. `"extra/world_steps"`) made to fit today's state, before they are checked
      against it (Lightning's `on_load_checkpoint`): a leaf added since gets its value.
    """

    def init_state(self, rng: jax.Array) -> TrainState:
        """A fresh state from a typed PRNG key."""
        ...

    def train_step(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One optimisation step; pure and jittable."""
        ...


def task_config(task: Any) -> dict[str, Any]:
    """The task's JSON-able config, or an empty dict if it declares none."""
    config = getattr(task, "config", None)
    return dict(config()) if callable(config) else {}


def checkpoint_upgrade(task: Any) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None:
    """The task's `upgrade_checkpoint`, or None if it declares none."""
    upgrade = getattr(task, "upgrade_checkpoint", None)
    return upgrade if callable(upgrade) else None


def task_name(task: Any) -> str:
    """A short name for run directories."""
    return str(getattr(task, "name", None) or type(task).__name__.lower())
