"""The policy/value network shared by all agents, and each slot's own policy head.

Every agent observes through one shared MLP trunk with a policy head (5 logits) and
a value head. With evolution on, each agent slot also owns `agent_params`: a
personal linear policy head `(w, b)` on the trunk's last features, added to the
shared logits, so `logits_i(o) = shared_logits(o) + h(o) @ w_i + b_i`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

AgentParams = dict[str, jax.Array]  # {"w": (envs, slots, hidden, actions), "b": (envs, slots, actions)}


class ActorCritic(nn.Module):
    """Shared MLP: obs -> (logits, value, last hidden features)."""

    hidden_sizes: Sequence[int]
    num_actions: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        features = obs
        for size in self.hidden_sizes:
            features = nn.tanh(nn.Dense(size, kernel_init=nn.initializers.orthogonal(jnp.sqrt(2.0)))(features))
        logits = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01))(features)
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(features)[..., 0]
        return logits, value, features


def init_agent_params(
    key: jax.Array, num_envs: int, max_agents: int, hidden: int, num_actions: int, std: float
) -> AgentParams:
    """Personal heads for every (env, slot), drawn N(0, std^2) so founders differ."""
    key_w, key_b = jax.random.split(key)
    return {
        "w": std * jax.random.normal(key_w, (num_envs, max_agents, hidden, num_actions)),
        "b": std * jax.random.normal(key_b, (num_envs, max_agents, num_actions)),
    }


def policy(
    network: ActorCritic, params: Any, agent_params: AgentParams | None, obs: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(logits, value, features) for obs shaped (..., envs, slots, obs_size).

    `agent_params` rows line up with the (envs, slots) axes; None means no personal
    heads (evolution off).
    """
    logits, value, features = network.apply(params, obs)
    return with_heads(logits, features, agent_params), value, features


def with_heads(shared_logits: jax.Array, features: jax.Array, agent_params: AgentParams | None) -> jax.Array:
    """The one per-agent formula: `logits_i(o) = shared_logits(o) + h(o) @ w_i + b_i`.

    `shared_logits` (..., envs, slots, actions) and `features` (..., envs, slots, hidden)
    line up with the heads' (envs, slots) rows (broadcast them to judge every head on
    the same observations, as the trackers' probe does); None means no personal heads.
    """
    if agent_params is None:
        return shared_logits
    return shared_logits + jnp.einsum("...esh,esha->...esa", features, agent_params["w"]) + agent_params["b"]
