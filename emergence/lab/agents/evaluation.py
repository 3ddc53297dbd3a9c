"""Episodes on fresh worlds for evaluation, baselines, trackers and rendering.

`run_episodes` plays `num_steps` steps of `num_envs` fresh worlds (no auto-reset:
an extinct world stays empty) with a greedy, sampled or uniformly random policy and
returns the whole `EpisodeLog`; `episode_metrics` turns a log into the eval metrics.
With evolution, eval world e uses the heads of training world `e % num_envs`, and
newborns inherit (with mutation) exactly as in training.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from emergence.envs import NUM_ACTIONS, EnvState, WorldValues, observe, reset_state, step
from emergence.lab.agents import evolution
from emergence.lab.agents.config import PPOConfig
from emergence.lab.agents.networks import ActorCritic, AgentParams, policy

Mode = Literal["greedy", "sample", "random"]


def make_network(config: PPOConfig) -> ActorCritic:
    """The shared actor-critic of a config."""
    return ActorCritic(hidden_sizes=tuple(config.hidden_sizes), num_actions=NUM_ACTIONS)


@struct.dataclass
class EpisodeLog:
    """Per-step record, every field with leading axes (num_steps, num_envs).

    `states[t]` is the world when the agents chose `actions[t]` (so `states[0]` is
    the fresh world); counts are those of `step`'s info for that step.
    """

    states: EnvState
    actions: jax.Array  # (steps, envs, slots) int32
    reward: jax.Array  # (steps, envs, slots) float32
    food_eaten: jax.Array
    births: jax.Array
    deaths: jax.Array
    population: jax.Array  # after the step
    energy_spent: jax.Array


def _heads_for(agent_params: AgentParams | None, num_envs: int) -> AgentParams | None:
    """Training heads tiled over `num_envs` eval worlds (eval world e uses row e % trained)."""
    if agent_params is None:
        return None
    trained = agent_params["b"].shape[0]
    return jax.tree.map(lambda x: x[jnp.arange(num_envs) % trained], agent_params)


def run_episodes(
    key: jax.Array,
    config: PPOConfig,
    params: Any,
    agent_params: AgentParams | None,
    mode: Mode = "greedy",
    num_envs: int | None = None,
    num_steps: int | None = None,
    mutation_std: Any = None,
    values: WorldValues | None = None,
    inherit_heads: Any = 1.0,
) -> EpisodeLog:
    """Play fresh worlds for `num_steps` (default `config.eval_steps`, `config.eval_envs`).

    `mode`: "greedy" (argmax), "sample" (from the policy) or "random" (uniform
    actions; `params` and `agent_params` are then ignored). Pure and jittable with
    `config`, `mode`, `num_envs` and `num_steps` static; `mutation_std` (default the
    config's), the world's `values` (default the config's) and `inherit_heads` may be
    traced, a sweep run's own.
    """
    mutation_std = config.mutation_std if mutation_std is None else mutation_std
    env = config.env
    num_envs = num_envs or config.eval_envs
    num_steps = num_steps or config.eval_steps
    network = make_network(config)
    key_reset, key_run = jax.random.split(key)
    states = jax.vmap(lambda k: reset_state(k, env, values))(jax.random.split(key_reset, num_envs))
    heads = None if mode == "random" else _heads_for(agent_params, num_envs)

    def one_step(carry, key):
        states, heads = carry
        key_act, key_env, key_mutate = jax.random.split(key, 3)
        if mode == "random":
            actions = jax.random.randint(key_act, (num_envs, env.max_agents), 0, NUM_ACTIONS)
        else:
            logits, _, _ = policy(network, params, heads, jax.vmap(lambda s: observe(s, env, values))(states))
            actions = jnp.argmax(logits, -1) if mode == "greedy" else jax.random.categorical(key_act, logits)
        keys = jax.random.split(key_env, num_envs)
        _, after, reward, _, info = jax.vmap(lambda k, s, a: step(k, s, a, env, values))(keys, states, actions)
        if heads is not None:
            heads = evolution.inherit(key_mutate, heads, info["born"], after.parent_slot, mutation_std, inherit_heads)
        record = EpisodeLog(
            states,
            actions.astype(jnp.int32),
            reward,
            info["food_eaten"],
            info["births"],
            info["deaths"],
            info["population"],
            info["energy_spent"],
        )
        return (after, heads), record

    return jax.lax.scan(one_step, (states, heads), jax.random.split(key_run, num_steps))[1]


def episode_metrics(log: EpisodeLog) -> dict[str, jax.Array]:
    """The eval metrics of a log, float32 scalars.

    - `eval/food_per_agent_step`: food eaten / agent-steps (one agent acting once).
    - `eval/mean_return`: food eaten / agents that lived in the window (founders and
      newborns), i.e. the mean undiscounted return per agent.
    - `eval/population`: mean number of alive agents per world per step.
    - `eval/lifespan`: agent-steps / agents that lived: mean steps lived per agent
      within the window (agents alive at its end are counted up to the end).
    """
    agent_steps = log.states.alive.sum().astype(jnp.float32)
    food = log.food_eaten.sum().astype(jnp.float32)
    agents = (log.states.alive[0].sum() + log.births.sum()).astype(jnp.float32)
    return {
        "eval/mean_return": food / jnp.maximum(agents, 1.0),
        "eval/food_per_agent_step": food / jnp.maximum(agent_steps, 1.0),
        "eval/population": agent_steps / log.states.alive.shape[0] / log.states.alive.shape[1],
        "eval/lifespan": agent_steps / jnp.maximum(agents, 1.0),
    }


def evaluate(
    key: jax.Array,
    config: PPOConfig,
    params: Any,
    agent_params: AgentParams | None,
    mode: Mode = "greedy",
    mutation_std: Any = None,
    values: WorldValues | None = None,
    inherit_heads: Any = 1.0,
) -> dict[str, jax.Array]:
    """`episode_metrics` of `run_episodes` with the config's eval sizes (`values`, `inherit_heads`: a run's own)."""
    log = run_episodes(
        key, config, params, agent_params, mode, mutation_std=mutation_std, values=values, inherit_heads=inherit_heads
    )
    return episode_metrics(log)


def random_policy_metrics(key: jax.Array, config: PPOConfig) -> dict[str, jax.Array]:
    """The same measurement as `PPOTask.eval_step` for uniformly random actions.

    With the same key the worlds start identical to the greedy evaluation's, so the
    two are directly comparable.
    """
    return evaluate(key, config, None, None, mode="random")
