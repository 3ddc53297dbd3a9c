"""Turnover of a world under a fixed policy: does it live below its cap, with births, deaths and deepening lineages?

`simulate` runs worlds for many steps under a fixed policy (`random`, or `greedy`: step
onto the nearest visible food, else a random move, a stand-in for a trained forager),
resetting a world only on extinction or after `max_steps`, as the learner does; its
`values` may be traced, so one compiled program measures many value sets (vmap over
them). `turnover` summarises a trace. `bench/selection_world.py` tunes worlds with it,
and the selection preset's test asserts its criteria with it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emergence.envs.foraging import NUM_ACTIONS, observe, reset_state, step
from emergence.envs.params import EnvParams, WorldValues


def greedy_actions(key: jax.Array, obs: jax.Array, radius: int) -> jax.Array:
    """Toward the nearest visible food (rows first), else a random move; (agents, obs) -> (agents,)."""
    width = 2 * radius + 1
    food = obs[:, :-1].reshape(-1, width, width, 3)[..., 0]
    offsets = jnp.arange(width) - radius
    dist = jnp.abs(offsets)[:, None] + jnp.abs(offsets)[None, :]
    score = jnp.where(food > 0, dist, 10**6).reshape(food.shape[0], -1)
    best = jnp.argmin(score, -1)
    row, col = offsets[best // width], offsets[best % width]
    toward = jnp.where(row < 0, 1, jnp.where(row > 0, 2, jnp.where(col < 0, 3, jnp.where(col > 0, 4, 0))))
    seen = score.min(-1) < 10**6
    return jnp.where(seen, toward, jax.random.randint(key, (obs.shape[0],), 1, NUM_ACTIONS))


def simulate(env: EnvParams, values: WorldValues, worlds: int, steps: int, policy: str, key: jax.Array) -> dict:
    """Per-step (population, births, deaths, deepest generation, extinctions) summed over worlds.

    `policy` is "greedy" or "random"; jittable with `env`, `worlds`, `steps`, `policy` static.
    """

    def one(state, key):
        key_act, key_step, key_reset = jax.random.split(key, 3)
        obs = jax.vmap(lambda s: observe(s, env, values))(state)
        act_keys = jax.random.split(key_act, worlds)
        if policy == "greedy":
            actions = jax.vmap(lambda k, o: greedy_actions(k, o, env.view_radius))(act_keys, obs)
        else:
            actions = jax.random.randint(key_act, (worlds, env.max_agents), 0, NUM_ACTIONS)
        keys = jax.random.split(key_step, worlds)
        _, after, _, done, info = jax.vmap(lambda k, s, a: step(k, s, a, env, values))(keys, state, actions)
        fresh = jax.vmap(lambda k: reset_state(k, env, values))(jax.random.split(key_reset, worlds))
        pick = lambda new, old: jnp.where(done.reshape(done.shape + (1,) * (old.ndim - 1)), new, old)
        record = {
            "population": state.alive.sum(),
            "births": info["births"].sum(),
            "deaths": info["deaths"].sum(),
            "generation": jnp.where(after.alive, after.generation, 0).max(),
            "extinctions": (~after.alive.any(-1)).sum(),
        }
        return jax.tree.map(pick, fresh, after), record

    state = jax.vmap(lambda k: reset_state(k, env, values))(jax.random.split(key, worlds))
    return jax.lax.scan(one, state, jax.random.split(jax.random.fold_in(key, 1), steps))[1]


def turnover(trace: dict, env: EnvParams, worlds: int, window: int) -> dict[str, float]:
    """One trace's figures (host numbers): population / cap over the last half, deaths and births per 1000
    agent steps (last half), the share of the last quarter's windows of `window` steps with a death, the
    deepest generation by the half and by the end, env steps per generation, extinctions."""
    trace = {k: np.asarray(v) for k, v in trace.items()}
    steps = trace["population"].shape[0]
    half, quarter = slice(steps // 2, None), slice(3 * steps // 4, None)
    agent_steps = trace["population"][half].sum()
    deaths_per_window = trace["deaths"][quarter][: (steps // 4) // window * window].reshape(-1, window).sum(-1)
    depth = max(int(trace["generation"].max()), 1)
    return {
        "pop/cap": trace["population"][half].mean() / worlds / env.max_agents,
        "deaths/1k": 1000 * trace["deaths"][half].sum() / max(agent_steps, 1),
        "births/1k": 1000 * trace["births"][half].sum() / max(agent_steps, 1),
        "windows_with_death": float((deaths_per_window > 0).mean()) if deaths_per_window.size else float("nan"),
        "gen_at_half": int(trace["generation"][: steps // 2].max()),
        "gen_at_end": int(trace["generation"].max()),
        "steps/gen": steps / depth,
        "extinctions": int(trace["extinctions"].sum()),
    }
