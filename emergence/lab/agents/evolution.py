"""Evolution of the per-slot policy heads: inheritance with mutation, and the two
population terms that enter the PPO objective.

Per environment, with `A` the agents alive at the end of the rollout (n = |A|) and
`theta_i` agent i's personal head flattened (`w` then `b`):

- `weight_diversity` = sum_i |theta_i - mean_A theta|^2 / (sum_i |theta_i|^2 + 1e-8)
  over i in A: the share of the population's head "energy" that is not shared, in
  [0, 1), 0 when all heads are equal. Scale-free, so rewarding it spreads heads apart
  without inflating them.
- `behaviour_similarity` = mean over ordered pairs i != j in A and probe
  observations o of the cosine of pi_i(.|o) and pi_j(.|o) (as vectors over actions):
  1 when two agents act alike, whether deterministically or at random, and lower only
  when they prefer different actions. So niche pressure cannot be met by acting more
  randomly (the probability of taking the same action, the term before, fell from 1 to
  1/5 as two identical policies became uniform). The probes are the observations of
  the agents in A.

Both are averaged over environments with n >= 2 and enter the minimised loss as
``- diversity_bonus * weight_diversity + niche_pressure * behaviour_similarity``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from emergence.lab.agents.networks import AgentParams


def _take_rows(x: jax.Array, source: jax.Array) -> jax.Array:
    """x[e, source[e, s]] for each (env, slot)."""
    return jax.vmap(lambda rows, idx: rows[idx])(x, source)


def copy_rows(tree: Any, born: jax.Array, parent_slot: jax.Array) -> Any:
    """Every leaf has (envs, slots) leading axes: newborn rows become their parent's row."""
    source = jnp.where(born, parent_slot, jnp.arange(born.shape[1]))
    return jax.tree.map(lambda x: _take_rows(x, source), tree)


def inherit(
    key: jax.Array,
    agent_params: AgentParams,
    born: jax.Array,
    parent_slot: jax.Array,
    mutation_std: Any,
    inherit_heads: Any = 1.0,
) -> AgentParams:
    """Each newborn slot (born[e, s]) gets `inherit_heads` x its parent's head plus N(0, mutation_std^2) noise.

    `inherit_heads` 1 is inheritance with mutation; 0 gives a fresh random head, drawn
    as the founders' are (the control arm without inheritance). Rows of slots without a
    birth are returned unchanged, bit for bit.
    """
    copied = copy_rows(agent_params, born, parent_slot)
    keys = dict(zip(sorted(copied), jax.random.split(key, len(copied))))

    def mutate(name: str, x: jax.Array) -> jax.Array:
        mask = born.reshape(born.shape + (1,) * (x.ndim - 2))
        kept = x if isinstance(inherit_heads, float) and inherit_heads == 1.0 else inherit_heads * x
        return jnp.where(mask, kept + mutation_std * jax.random.normal(keys[name], x.shape, x.dtype), x)

    return {name: mutate(name, x) for name, x in copied.items()}


def _env_mean(values: jax.Array, counts: jax.Array) -> jax.Array:
    """Mean of per-env values over envs with at least two agents (0 if none)."""
    valid = counts >= 2
    return jnp.where(valid, values, 0.0).sum() / jnp.maximum(valid.sum(), 1)


def weight_diversity(agent_params: AgentParams, alive: jax.Array) -> jax.Array:
    """Share of the alive heads' squared norm that is not shared (see module docstring)."""
    envs, slots = alive.shape
    theta = jnp.concatenate([x.reshape(envs, slots, -1) for _, x in sorted(agent_params.items())], -1)
    mask = alive[..., None].astype(theta.dtype)
    count = mask.sum(1)
    mean = (theta * mask).sum(1) / jnp.maximum(count, 1.0)
    spread = (mask * (theta - mean[:, None]) ** 2).sum((1, 2))
    total = (mask * theta**2).sum((1, 2))
    return _env_mean(spread / (total + 1e-8), count[:, 0])


def behaviour_similarity(probs: jax.Array, alive: jax.Array) -> jax.Array:
    """Mean cosine between two alive agents' action distributions on the same probe.

    `probs[e, i, o, a]` is agent i's policy on probe observation o of env e; probes
    and agents are both masked by `alive[e, .]`.
    """
    mask = alive.astype(probs.dtype)
    unit = probs / jnp.sqrt((probs**2).sum(-1, keepdims=True) + 1e-12)
    weighted = unit * mask[:, :, None, None]
    together = weighted.sum(1)  # (envs, probes, actions)
    pairs = (together**2).sum(-1) - (weighted**2).sum((1, 3))  # sum over i != j, per probe
    count = mask.sum(1)
    per_env = (pairs * mask).sum(1) / jnp.maximum(count * count * (count - 1), 1.0)
    return _env_mean(per_env, count)
