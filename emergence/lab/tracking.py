"""What the lab's trackers watch: the PPO metrics behind each population series, and a policy probe.

The probe (`policy_probe`) is what `SpecializationTracker` sees of each agent: every
alive agent's policy evaluated on one shared *probe set*, the current observations of
all alive agents in all training worlds. Judging every agent on the same situations
measures how their policies differ, not where they happen to stand: without
evolution (one shared policy) every profile is the same and the specialisation index
is 0. Per agent (env × slot) it reports expected counts: `action_counts[n, a]` = sum
over the probe set of pi_n(a | o), `movement[n]` = the expected number of moves
(actions other than stay), plus its head's weights (`agent_params`) and `alive`.

A sweep keeps the same trackers per run (`sweep_trackers`, named `emergence/run_3`, ...),
each reading its run's metrics (`env/population/run_3`) and its slice of one probe
vmapped over the runs (`sweep_probe`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from emergence.envs import observe
from emergence.lab.agents import PPOTask
from emergence.lab.agents.hyper import Hyper, weigh_heads, world_values
from emergence.lab.agents.networks import with_heads
from emergence.lab.trackers import EmergenceTracker, SpecializationTracker
from emergence.lab.trackers.specialization import DEFAULT_KEYS
from emergence.state import TrainState

LAB_SERIES = {
    "population": "env/population",
    "births": "env/births",
    "deaths": "env/deaths",
    "food": "env/food_per_agent_step",
    "mean_energy": "env/mean_energy",
    "lifespan": "env/lifespan",
}
"""EmergenceTracker series -> the PPO train metric each one reads."""


def lab_trackers() -> list[Any]:
    """The trackers `emergence train` keeps: population series with events, and specialisation."""
    return [EmergenceTracker(LAB_SERIES), SpecializationTracker()]


def policy_probe(task: PPOTask, hyper: Hyper | None = None) -> Callable[..., dict[str, jax.Array]]:
    """A jittable `probe(state)` for `TrackerCallback` (see the module docstring); it never changes the state.

    Observations are made with the world's values in `hyper` (default the task's own);
    `probe(state, hyper)` takes a sweep run's.
    """
    env_params = task.cfg.env

    def probe(state: TrainState, hyper: Hyper | None = hyper) -> dict[str, jax.Array]:
        values = world_values(task.hyper() if hyper is None else hyper)
        worlds = state.extra["env"]
        obs = jax.vmap(lambda s: observe(s, env_params, values))(worlds)
        alive = worlds.alive.reshape(-1)
        shared_logits, _, features = task.network.apply(state.params, obs.reshape(alive.shape[0], -1))
        heads = state.extra.get("agent_params")
        envs, slots = worlds.alive.shape
        every_head = lambda x: jnp.broadcast_to(x[:, None, None], (x.shape[0], envs, slots, x.shape[-1]))
        logits = with_heads(every_head(shared_logits), every_head(features), heads)  # (probes, envs, slots, actions)
        logits = jnp.moveaxis(logits.reshape(alive.shape[0], alive.shape[0], -1), 1, 0)  # (agents, probes, actions)
        out: dict[str, jax.Array] = {}
        if heads is not None:
            out = {"agent_params": jax.tree.map(lambda x: x.reshape(alive.shape[0], *x.shape[2:]), heads)}
        weights = alive.astype(jnp.float32)
        counts = jnp.einsum("nma,m->na", jax.nn.softmax(logits), weights) * weights[:, None]
        return out | {"action_counts": counts, "movement": counts[:, 1:].sum(-1), "alive": alive}

    return probe


def run_tag(key: str, run: int) -> str:
    """`key` of run `run` of a sweep: `env/population` -> `env/population/run_3`."""
    return f"{key}/run_{run}"


def sweep_trackers(runs: int) -> list[Any]:
    """`lab_trackers()` for each run of a sweep, reading that run's metrics and probe outputs."""
    return [
        tracker
        for i in range(runs)
        for tracker in (
            EmergenceTracker(
                {series: run_tag(metric, i) for series, metric in LAB_SERIES.items()}, name=run_tag("emergence", i)
            ),
            SpecializationTracker({key: run_tag(key, i) for key in DEFAULT_KEYS}, name=run_tag("specialization", i)),
        )
    ]


def sweep_probe(task: Any) -> Callable[[TrainState], dict[str, jax.Array]]:
    """`policy_probe` of a `SweepTask`'s runs: vmapped over them, sliced per run on device (`action_counts/run_3`).

    Each run's heads are judged as they act (weighted by its evolution switch when the grid has one).
    """
    inner = policy_probe(task.task)

    def probe_run(state: TrainState, hyper: dict[str, jax.Array]) -> dict[str, jax.Array]:
        heads = weigh_heads(state.extra.get("agent_params"), hyper)
        return inner(state if heads is None else state.replace(extra=state.extra | {"agent_params": heads}), hyper)

    def probe(state: TrainState) -> dict[str, jax.Array]:
        stacked = jax.vmap(probe_run)(state, task.hyper)
        return {
            run_tag(key, i): jax.tree.map(lambda x: x[i], value)
            for key, value in stacked.items()
            for i in range(task.num_seeds)
        }

    return probe
