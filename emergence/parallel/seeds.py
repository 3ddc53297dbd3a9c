"""ManySeeds: S independent runs of one task as one vmapped program, one stacked state.

Every leaf of the state gets a leading seed axis of length S; `train_step` and
`eval_step` are the inner task's, vmapped, so one jitted call advances every seed.
Seed i starts from `jax.random.fold_in(run_key, i)`, where `run_key` is the key the
Trainer passes (`jax.random.key(seed)`). One checkpoint holds the whole stack; its
config is `{"num_seeds": S, "task": <inner config>}`, which is how
`emergence ckpt export --seed i` (see `seed_checkpoint`) recognises it and pulls one
run out as an ordinary checkpoint of the inner task.

Metrics come out per seed (`loss/seed_3`) and averaged over seeds (`loss`), sliced on
device inside the jitted step: no host sync.

A stack whose runs differ in more than their seed (the lab's sweeps) lists each run's
own config under `config()["runs"][i]["config"]`; export then gives run i that config.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from emergence.log import get_logger
from emergence.parallel.mesh import split_leading_axis
from emergence.state import TrainState
from emergence.task import Task, task_config, task_name

log = get_logger("emergence.parallel")

Metrics = dict[str, jax.Array]


def seed_tag(name: str, seed: int, tag: str = "seed") -> str:
    """The metric name of seed `seed`'s `name`: `loss` -> `loss/seed_3` (`loss/run_3` with tag "run")."""
    return f"{name}/{tag}_{seed}"


def per_seed(metrics: Metrics, num_seeds: int, tag: str = "seed") -> Metrics:
    """Stacked `(S, ...)` metrics as their mean over seeds plus one entry per seed (on device).

    The mean leaves out seeds whose value is NaN ("no value this step", see `emergence.metrics.totals`).
    """
    out = {name: jnp.nanmean(value, axis=0) for name, value in metrics.items()}
    out |= {seed_tag(name, i, tag): value[i] for name, value in metrics.items() for i in range(num_seeds)}
    return out


class ManySeeds:
    """`num_seeds` independent runs of `task`, vmapped in one jitted step.

    Use it as the Trainer's task: `Trainer(ManySeeds(PPOTask(cfg), 8), ...)`. With
    `Trainer(devices=...)` the seed axis is split across devices when it divides evenly
    (each device runs its own seeds, no communication); otherwise the stack is
    replicated and a warning says so.
    """

    def __init__(self, task: Task, num_seeds: int) -> None:
        if not isinstance(num_seeds, int) or isinstance(num_seeds, bool) or num_seeds < 1:
            raise ValueError(f"num_seeds must be a positive integer, got {num_seeds!r}")
        self.task = task
        self.num_seeds = num_seeds
        self.name = f"{task_name(task)}_{num_seeds}seeds"
        self.structural_keys = {"num_seeds"} | {f"task.{key}" for key in getattr(task, "structural_keys", ())}
        if callable(getattr(task, "eval_step", None)):
            self.eval_step = self._eval_step
        if callable(getattr(task, "upgrade_checkpoint", None)):  # leaf paths are the inner task's, stacked
            self.upgrade_checkpoint = task.upgrade_checkpoint

    def config(self) -> dict[str, Any]:
        """`{"num_seeds": S, "task": <the inner task's config>}`."""
        return {"num_seeds": self.num_seeds, "task": task_config(self.task)}

    def seed_keys(self, rng: jax.Array) -> jax.Array:
        """The S starting keys: seed i gets `fold_in(rng, i)`."""
        return jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(self.num_seeds))

    def init_state(self, rng: jax.Array) -> TrainState:
        """The inner task's fresh states for every seed, stacked on a leading axis."""
        return jax.vmap(self.task.init_state)(self.seed_keys(rng))

    def train_step(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One step of every seed; metrics per seed and averaged."""
        state, metrics = jax.vmap(self.task.train_step)(state)
        return state, per_seed(metrics, self.num_seeds)

    def _eval_step(self, state: TrainState) -> Metrics:
        return per_seed(jax.vmap(self.task.eval_step)(state), self.num_seeds)

    def state_sharding(self, mesh: Any, state: TrainState) -> Any:
        """The seed axis split across the mesh (replicated when S does not divide by the device count)."""
        if self.num_seeds % mesh.size:
            log.warning(
                "num_seeds=%d does not divide over %d devices: every device runs every seed; "
                "use a multiple of the device count",
                self.num_seeds,
                mesh.size,
            )
        return jax.tree.map(lambda leaf: split_leading_axis(mesh, leaf), state)
