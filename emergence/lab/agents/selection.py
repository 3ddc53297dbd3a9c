"""What one update's rollout says about selection: births, deaths, lineages, generations, inequality.

All computed on the device inside the train step from the rollout's transitions and
the worlds at its end, as float32 scalars (the logger throttles them like every metric;
a sweep gets them per run). A value that does not exist in a rollout (the age at death
when nobody died) is NaN, which the loggers' running totals leave out of a window
(`emergence.metrics.totals`): absent, never averaged as 0.

- `env/births`, `env/deaths`: counts over the rollout (all worlds).
- `env/population`: mean alive agents per world per step.
- `env/age_at_death`: mean age of the agents that died in the rollout.
- `env/generation_max`, `env/generation_mean`: generation of the agents alive at the
  end (founders are 0), deepest over worlds and mean over agents.
- `env/lineages`: founder lineages with an alive descendant at the end, per world.
- `env/selection_opportunity`: Crow's index `var(k) / mean(k)^2` of the offspring
  counts k of every agent that lived in the rollout (offspring born within it; an agent
  is counted when its life in the window ends: death, a world reset, or the window's end).
- `env/food_gini`: Gini coefficient of the food eaten by the agents that held their
  slot for the whole rollout (same exposure), per world, averaged over worlds with two or more.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from emergence.envs import EnvState

NAN = jnp.float32(jnp.nan)


def _ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    """num / den as float32, NaN where den is 0 (no value)."""
    den = den.astype(jnp.float32)
    return jnp.where(den > 0, num.astype(jnp.float32) / jnp.where(den > 0, den, 1.0), NAN)


def offspring_dispersion(ended: jax.Array, born: jax.Array, parent: jax.Array, alive_end: jax.Array) -> jax.Array:
    """Crow's opportunity for selection over the agents of a rollout (see the module docstring).

    `ended`, `born`, `parent` are (steps, envs, slots): an agent's life in the window
    ended at that step, a child was born into the slot, and the slot its parent held.
    """

    def credit(kids, parent_e, born_e):
        return kids.at[parent_e].add(born_e.astype(kids.dtype), mode="drop")

    def one_step(carry, data):
        kids, n, s1, s2 = carry
        ended_t, born_t, parent_t = data
        n, s1, s2 = n + ended_t.sum(), s1 + (kids * ended_t).sum(), s2 + (kids**2 * ended_t).sum()
        kids = jnp.where(ended_t, 0.0, kids)
        kids = jax.vmap(credit)(kids, parent_t, born_t)
        return (jnp.where(born_t, 0.0, kids), n, s1, s2), None

    zero = jnp.float32(0.0)
    start = (jnp.zeros(ended.shape[1:], jnp.float32), zero, zero, zero)
    (kids, n, s1, s2), _ = jax.lax.scan(one_step, start, (ended, born, parent))
    n, s1, s2 = n + alive_end.sum(), s1 + (kids * alive_end).sum(), s2 + (kids**2 * alive_end).sum()
    mean = s1 / jnp.maximum(n, 1.0)
    return _ratio(s2 / jnp.maximum(n, 1.0) - mean**2, mean**2 * (n > 0))


def gini(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Gini coefficient of `values` over `mask` along the last axis (NaN with fewer than two or a zero total)."""
    x = jnp.where(mask, values, 0.0)
    count = mask.sum(-1).astype(jnp.float32)
    spread = (jnp.abs(x[..., :, None] - x[..., None, :]) * (mask[..., :, None] & mask[..., None, :])).sum((-1, -2))
    return _ratio(spread, 2.0 * count * x.sum(-1) * (count >= 2))


def lineages(worlds: EnvState, founders: int) -> jax.Array:
    """Founder lineages (uids 0..founders-1) with an alive member, per world: (envs,)."""
    member = worlds.alive[..., None] & (worlds.founder[..., None] == jnp.arange(founders))
    return member.any(-2).sum(-1)


def selection_metrics(traj: Any, worlds: EnvState, founders: int) -> dict[str, jax.Array]:
    """The module docstring's metrics from a rollout's transitions and the worlds at its end."""
    counts = {k: v.sum() for k, v in traj.counts.items()}
    alive_gen = jnp.where(worlds.alive, worlds.generation, 0)
    full = traj.alive.all(0) & ~traj.done[:-1].any(0)
    food = jnp.nanmean(gini(traj.reward.sum(0), full))
    return {
        "env/births": counts["births"].astype(jnp.float32),
        "env/deaths": counts["deaths"].astype(jnp.float32),
        "env/population": traj.alive.sum(-1).mean().astype(jnp.float32),
        "env/age_at_death": _ratio(counts["lifespan_sum"], counts["deaths"]),
        "env/generation_max": alive_gen.max().astype(jnp.float32),
        "env/generation_mean": _ratio(alive_gen.sum(), worlds.alive.sum()),
        "env/lineages": lineages(worlds, founders).mean().astype(jnp.float32),
        "env/selection_opportunity": offspring_dispersion(traj.done, traj.born, traj.parent, worlds.alive),
        "env/food_gini": food,
    }
