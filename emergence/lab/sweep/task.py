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

How the runs share the program (`strategy`): `vmap` vectorises them (what fills a GPU;
PPO's branches then ask whether any run needs them, see `PPOTask._anywhere`), `map`
loops over them inside the one jitted call (`lax.map`: each run's own program, no
vector width to fill). The default is `map` on a CPU, where it measured 0.99x the CPU
time of separate runs against vmap's 0.73x (bench/sweep_throughput.py, docs/sweeps.md),
and `vmap` elsewhere. Either way one checkpoint holds every run, and run i computes
what its config computes alone.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp

from emergence.lab.agents import PPOConfig, PPOTask
from emergence.lab.agents.hyper import stacked
from emergence.lab.sweep.grid import EVOLUTION, Grid, Run
from emergence.parallel.seeds import ManySeeds, Metrics, per_seed
from emergence.state import TrainState

RUN_TAG = "run"
RUN_AXIS = "runs"
"""The vmap axis name: PPO's branches ask whether any run needs them (`PPOTask._anywhere`)."""
Strategy = Literal["vmap", "map"]
HEADS = ("extra/agent_params", "extra/agent_opt_state")
"""What a run with evolution off does not have alone: `ckpt export --run` drops these subtrees (`drop`)."""


def default_strategy() -> Strategy:
    """`map` on a CPU backend, `vmap` on accelerators (see the module docstring)."""
    return "map" if jax.default_backend() == "cpu" else "vmap"


class SweepTask(ManySeeds):
    """The runs of `grid` (seeds from `first_seed`) as one task: `Trainer(SweepTask(...), ...)`.

    `configs[i]` is run i's whole learner config; they may differ only in traced values.
    `strategy`: `vmap` or `map` (default: `default_strategy()`).
    """

    def __init__(
        self, base: PPOConfig, grid: Grid, runs: list[Run], configs: list[PPOConfig], strategy: Strategy | None = None
    ) -> None:
        self.strategy = strategy or default_strategy()
        if self.strategy not in ("vmap", "map"):
            raise ValueError(f"strategy must be 'vmap' or 'map', got {self.strategy!r}")
        super().__init__(PPOTask(base, axis_name=RUN_AXIS if self.strategy == "vmap" else None), len(runs))
        self.grid, self.runs, self.configs = grid, runs, configs
        self.name = f"ppo_sweep_{len(runs)}runs"
        self.structural_keys = self.structural_keys | {"sweep", "runs"}
        self.hyper = stacked(configs, evolution_weight=EVOLUTION in grid.values)

    def config(self) -> dict[str, Any]:
        """The stack's config plus the grid and every run's values, seed, name and config."""
        runs = [
            {
                "name": run.name,
                "values": run.values,
                "seed": run.seed,
                "config": config.to_dict(),
                **({"drop": list(HEADS)} if self.task.cfg.evolution and not config.evolution else {}),
            }
            for run, config in zip(self.runs, self.configs)
        ]
        return super().config() | {"sweep": self.grid.to_dict(), "runs": runs}

    def seed_keys(self, rng: jax.Array) -> jax.Array:
        """Run i's key is `jax.random.key(seed_i)`, as for its config trained alone (`rng` is not used)."""
        return jax.vmap(jax.random.key)(jnp.asarray([run.seed for run in self.runs], jnp.uint32))

    def init_state(self, rng: jax.Array) -> TrainState:
        """Every run's fresh state, its worlds made with its own values (founders' energy)."""
        return jax.vmap(self.task.init_state_with)(self.seed_keys(rng), self.hyper)

    def train_step(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One update of every run with its own traced values; metrics per run and averaged."""
        state, metrics = self._each_run(self.task.train_step_with, state)
        return state, per_seed(metrics, self.num_seeds, RUN_TAG)

    def _eval_step(self, state: TrainState) -> Metrics:
        return per_seed(self._each_run(self.task.eval_step_with, state), self.num_seeds, RUN_TAG)

    def _each_run(self, step: Any, state: TrainState) -> Any:
        """`step(state_i, hyper_i)` for every run, stacked, by the task's strategy."""
        if self.strategy == "vmap":
            return jax.vmap(step, axis_name=RUN_AXIS)(state, self.hyper)
        return jax.lax.map(lambda run: step(*run), (state, self.hyper))
