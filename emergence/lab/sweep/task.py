"""SweepTask: every run of a sweep (grid values x seeds) as one vmapped PPO program, one stacked state.

A `ManySeeds` of `PPOTask` whose runs differ in their seed *and* their traced values:
`train_step` maps `PPOTask.train_step_with` over the stacked state and a stacked
`hyper` (one float32 per run per traced value, `emergence.lab.agents.hyper`), so run i
computes what the same config trained alone computes. Run i starts from
`jax.random.key(seed_i)`, the key `emergence train --train.seed seed_i` starts from
(the Trainer's own key is not used). The config records the grid and every run (its
values, seed and whole `PPOConfig`): that is what `emergence ckpt export --run i`
writes as run i's config, and a changed grid is a structural change on resume.
Metrics come per run (`loss/total/run_3`) and averaged over runs (`loss/total`).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from emergence.lab.agents import PPOConfig, PPOTask
from emergence.lab.agents.hyper import stacked
from emergence.lab.sweep.grid import Grid, Run
from emergence.parallel.seeds import ManySeeds, Metrics, per_seed
from emergence.state import TrainState

RUN_TAG = "run"


class SweepTask(ManySeeds):
    """The runs of `grid` (seeds from `first_seed`) as one task: `Trainer(SweepTask(...), ...)`.

    `configs[i]` is run i's whole learner config; they may differ only in traced values.
    """

    def __init__(self, base: PPOConfig, grid: Grid, runs: list[Run], configs: list[PPOConfig]) -> None:
        super().__init__(PPOTask(base), len(runs))
        self.grid, self.runs, self.configs = grid, runs, configs
        self.name = f"ppo_sweep_{len(runs)}runs"
        self.structural_keys = self.structural_keys | {"sweep", "runs"}
        self.hyper = stacked(configs)

    def config(self) -> dict[str, Any]:
        """The stack's config plus the grid and every run's values, seed, name and config."""
        runs = [{"name": run.name, "values": run.values, "seed": run.seed, "config": config.to_dict()}
                for run, config in zip(self.runs, self.configs)]
        return super().config() | {"sweep": self.grid.to_dict(), "runs": runs}

    def seed_keys(self, rng: jax.Array) -> jax.Array:
        """Run i's key is `jax.random.key(seed_i)`, as for its config trained alone (`rng` is not used)."""
        return jax.vmap(jax.random.key)(jnp.asarray([run.seed for run in self.runs], jnp.uint32))

    def train_step(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One update of every run with its own traced values; metrics per run and averaged."""
        state, metrics = jax.vmap(self.task.train_step_with)(state, self.hyper)
        return state, per_seed(metrics, self.num_seeds, RUN_TAG)

    def _eval_step(self, state: TrainState) -> Metrics:
        return per_seed(jax.vmap(self.task.eval_step_with)(state, self.hyper), self.num_seeds, RUN_TAG)
