"""The specialisation index on the rollout's own trajectories, and its excess over a shuffled-heads null.

Per world, each agent slot's expected action counts over the samples it acted in
(`counts[s, a] = sum_t mask[t, s] * pi_s(a | o_t)`, the policy the slot had at the end
of the rollout, on the observations it met) give `SI = I(agent; action) / H(action)`
(as `emergence.lab.trackers.specialization.specialization_index`, here on the device).
Agents that stand in different places act differently even with one shared policy, so
SI alone mixes situation with disposition. The null breaks the tie between agent and
head: every sample is evaluated with the head of a random agent of its world (one that
acted in the rollout, drawn afresh per sample and update), on the very same
observations. Whatever SI the situations alone produce, the null has too; what an
agent's own, consistent head adds, it has not.

- `spec/index`: SI, averaged over worlds with samples.
- `spec/excess`: SI minus the shuffled-heads SI: how much of the specialisation the
  agents' own heads carry (0 without heads, by construction, whatever the situations).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from emergence.lab.agents.networks import with_heads


def _entropy(p: jax.Array) -> jax.Array:
    return -(p * jnp.log(jnp.where(p > 0, p, 1.0))).sum(-1)


def specialisation_index(counts: jax.Array) -> jax.Array:
    """SI of (..., agents, actions) expected counts: (...), NaN where there are none."""
    per_agent = counts.sum(-1)
    total = per_agent.sum(-1)
    pooled = _entropy(counts.sum(-2) / jnp.maximum(total, 1e-12)[..., None])
    own = _entropy(counts / jnp.maximum(per_agent, 1e-12)[..., None])
    conditional = (per_agent * own).sum(-1) / jnp.maximum(total, 1e-12)
    index = jnp.where(pooled > 1e-6, (pooled - conditional) / jnp.maximum(pooled, 1e-6), 0.0)
    return jnp.where(total > 0, index, jnp.nan)


def _random_heads(key: jax.Array, heads: Any, active: jax.Array, steps: int) -> Any:
    """For every (step, env, slot) sample, the head of a random slot that acted in that world.

    Only slots that acted are drawn: a dead slot's head is a stale one (of an agent that
    died, perhaps of a lineage long gone), not a head of this population.
    """
    envs, slots = active.shape
    index = jnp.arange(slots)
    actives_first = jax.vmap(lambda a: jnp.argsort(jnp.where(a, index, slots + index)))(active)  # (envs, slots)
    count = jnp.maximum(active.sum(-1), 1)  # (envs,)
    pick = jnp.floor(jax.random.uniform(key, (steps, envs, slots)) * count[:, None]).astype(jnp.int32)
    drawn = jnp.take_along_axis(jnp.broadcast_to(actives_first, (steps, envs, slots)), pick, -1)  # slot ids
    rows = jnp.arange(envs)[None, :, None]
    return jax.tree.map(lambda x: x[rows, drawn], heads)  # (steps, envs, slots, ...)


def specialisation_metrics(
    key: jax.Array, network: Any, params: Any, heads: Any, obs: jax.Array, mask: jax.Array
) -> dict[str, jax.Array]:
    """`spec/index` and `spec/excess` of (steps, envs, slots, ...) observations under `mask` (module docstring)."""
    shared_logits, _, features = network.apply(params, obs)
    weights = mask.astype(jnp.float32)[..., None]

    def index(logits: jax.Array) -> jax.Array:
        return specialisation_index((jax.nn.softmax(logits) * weights).sum(0))  # (envs,)

    actual = index(with_heads(shared_logits, features, heads))
    if heads is None:
        return {"spec/index": jnp.nanmean(actual), "spec/excess": jnp.nanmean(actual - actual)}
    drawn = _random_heads(key, heads, mask.any(0), obs.shape[0])
    personal = jnp.einsum("tesh,tesha->tesa", features, drawn["w"]) + drawn["b"]
    null = index(shared_logits + personal)
    return {"spec/index": jnp.nanmean(actual), "spec/excess": jnp.nanmean(actual - null)}
