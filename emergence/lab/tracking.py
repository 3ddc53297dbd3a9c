"""What the lab's trackers watch: the PPO metrics behind each population series, and a policy probe.

The probe (`policy_probe`) is what `SpecializationTracker` sees of each agent: every
alive agent's policy evaluated on one shared *probe set*, the current observations of
all alive agents in all training worlds. Judging every agent on the same situations
measures how their policies differ, not where they happen to stand: without
evolution (one shared policy) every profile is the same and the specialisation index
is 0. Per agent (env × slot) it reports expected counts: `action_counts[n, a]` = sum
over the probe set of pi_n(a | o), `movement[n]` = the expected number of moves
(actions other than stay), plus its head's weights (`agent_params`) and `alive`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from emergence.lab.agents import PPOTask
from emergence.lab.agents.networks import with_heads
from emergence.envs import observe
from emergence.state import TrainState
from emergence.lab.trackers import EmergenceTracker, SpecializationTracker

LAB_SERIES = {"population": "env/population", "births": "env/births", "deaths": "env/deaths",
              "food": "env/food_per_agent_step", "mean_energy": "env/mean_energy", "lifespan": "env/lifespan"}
"""EmergenceTracker series -> the PPO train metric each one reads."""


def lab_trackers() -> list[Any]:
    """The trackers `emergence train` keeps: population series with events, and specialisation."""
    return [EmergenceTracker(LAB_SERIES), SpecializationTracker()]


def policy_probe(task: PPOTask) -> Callable[[TrainState], dict[str, jax.Array]]:
    """A jittable `probe(state)` for `TrackerCallback` (see the module docstring); it never changes the state."""
    env_params = task.cfg.env

    def probe(state: TrainState) -> dict[str, jax.Array]:
        worlds = state.extra["env"]
        obs = jax.vmap(lambda s: observe(s, env_params))(worlds)
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
