"""The specialisation index on the rollout's own trajectories, and its excess over a shuffled-heads null.

Per world, each agent slot's expected action counts over the samples it acted in
(`counts[s, a] = sum_t mask[t, s] * pi_s(a | o_t)`, the policy the slot had at the end
of the rollout, on the observations it met) give `SI = I(agent; action) / H(action)`
(as `emergence.lab.trackers.specialization.specialization_index`, here on the device).
Agents that stand in different places act differently even with one shared policy, so
SI alone mixes situation with disposition. The null shuffles the heads among the slots
of each world (a fresh random permutation each update) and measures SI again on the
very same observations: whatever SI the situations alone produce, the null has too.

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


def _shuffled(key: jax.Array, heads: Any) -> Any:
    """Each world's heads permuted among its slots."""
    envs, slots = heads["b"].shape[:2]
    perms = jax.vmap(lambda k: jax.random.permutation(k, slots))(jax.random.split(key, envs))
    return jax.tree.map(lambda x: jax.vmap(lambda rows, p: rows[p])(x, perms), heads)


def specialisation_metrics(
    key: jax.Array, network: Any, params: Any, heads: Any, obs: jax.Array, mask: jax.Array
) -> dict[str, jax.Array]:
    """`spec/index` and `spec/excess` of (steps, envs, slots, ...) observations under `mask` (module docstring)."""
    shared_logits, _, features = network.apply(params, obs)
    weights = mask.astype(jnp.float32)[..., None]

    def index(heads: Any) -> jax.Array:
        probs = jax.nn.softmax(with_heads(shared_logits, features, heads))
        return specialisation_index((probs * weights).sum(0))  # (envs,)

    actual = index(heads)
    null = actual if heads is None else index(_shuffled(key, heads))
    return {"spec/index": jnp.nanmean(actual), "spec/excess": jnp.nanmean(actual - null)}
