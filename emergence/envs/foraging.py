"""The foraging world: agents on a grid move, eat, reproduce and die. Pure JAX.

Everything is a pure function of (key, state, actions, params, values), so it runs
under `jax.jit` (with `params` static) and `jax.vmap` over environments *and* over
runs: `values` (`WorldValues`, default `params.values()`) holds the numbers that only
enter the arithmetic (energies, costs, ceiling, regrowth; see `emergence.envs.params`).

One `step`, in this order, for all agent slots at once:

1. Move. Action 0 stays, 1-4 move up / down / left / right. A move succeeds only
   into a cell inside the grid that no alive agent held at the start of the step;
   when several agents aim at the same free cell a random one of them wins (a fresh
   random priority per step). Failed moves stay put. So no two alive agents ever
   share a cell, and swaps cannot happen.
2. Eat and regrow. An agent standing on food gains `food_energy`, capped at
   `max_energy` when that is set (the excess is wasted and reported). Then each
   missing item (of `num_food`) grows back with chance `food_regrowth` on a random
   cell holding neither food nor an agent (`food_regrowth=1`: eaten food reappears at once).
3. Pay. Every alive agent pays `move_cost` if it chose to move (blocked or not),
   else `living_cost`. A cost larger than the energy left takes what is left, so
   energy never goes below zero.
4. Age and die. Every agent alive at the start of the step ages by one; agents at
   energy <= 0 die (their age is their lifespan), freeing slot and cell.
5. Reproduce. An agent with energy >= `reproduce_threshold` places one child on a
   free neighbouring cell (first free one in a random rotation of the four
   directions); two parents aiming at the same cell: a random one wins; when fewer
   slots are free than parents are ready, parents take the free slots in a random
   order. The parent pays `reproduce_cost` and the child starts with exactly
   `reproduce_cost` energy, age 0.

Energy is int32 and its bookkeeping is exact. With E the total energy of alive agents,
``E_after - E_before = food_energy * food_eaten - energy_wasted - energy_spent
- reproduce_cost * births + reproduce_cost * births``: the last two terms (what
parents pay, what children receive) cancel; agents die at exactly zero energy, so
death removes none.

`done` is true when every agent is dead or `max_steps` steps have run. `step` never
resets: auto-reset is the learner's business (see `emergence.lab.agents.ppo`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from emergence.envs.params import EnvParams, WorldValues

NUM_ACTIONS = 5
ACTION_DELTAS = jnp.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], jnp.int32)
ENERGY_OBS_CAP = 4.0  # observed energy is energy / starting_energy, clipped to this


@struct.dataclass
class EnvState:
    """One world. Per-slot arrays have `max_agents` rows; only `alive` rows are agents.

    Lineage: `uid` is unique within the episode, `parent_uid` / `parent_slot` name the
    parent at birth (-1 for founders), `founder` is the founding ancestor's uid.
    """

    pos: jax.Array  # (max_agents, 2) int32, (row, col)
    energy: jax.Array  # (max_agents,) int32
    age: jax.Array  # (max_agents,) int32, steps lived
    alive: jax.Array  # (max_agents,) bool
    uid: jax.Array  # (max_agents,) int32
    parent_uid: jax.Array  # (max_agents,) int32
    parent_slot: jax.Array  # (max_agents,) int32
    founder: jax.Array  # (max_agents,) int32
    generation: jax.Array  # (max_agents,) int32
    food: jax.Array  # (grid_size, grid_size) bool
    next_uid: jax.Array  # () int32
    t: jax.Array  # () int32, steps since reset


def _flat(pos: jax.Array, size: int) -> jax.Array:
    return pos[..., 0] * size + pos[..., 1]


def _occupied(state: EnvState, size: int) -> jax.Array:
    """Flat (size*size,) mask of cells holding an alive agent."""
    cells = jnp.where(state.alive, _flat(state.pos, size), size * size)
    return jnp.zeros(size * size, bool).at[cells].set(True, mode="drop")


def _sample_cells(key: jax.Array, free: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """k distinct uniformly random flat cells among `free`, and which draws are valid."""
    scores = jnp.where(free, jax.random.uniform(key, free.shape), -1.0)
    values, cells = jax.lax.top_k(scores, k)
    return cells, values >= 0.0


def _values(params: EnvParams, values: WorldValues | None) -> WorldValues:
    return params.values() if values is None else values


def reset_state(key: jax.Array, params: EnvParams, values: WorldValues | None = None) -> EnvState:
    """A fresh world: `initial_agents` founders and `num_food` food on distinct cells."""
    size, n, k = params.grid_size, params.max_agents, params.initial_agents
    start = _values(params, values).energy("starting_energy")
    cells, _ = _sample_cells(key, jnp.ones(size * size, bool), k + params.num_food)
    slots = jnp.arange(n)
    alive = slots < k
    pos = jnp.zeros((n, 2), jnp.int32).at[:k].set(jnp.stack(jnp.divmod(cells[:k], size), -1))
    uid = jnp.where(alive, slots, -1).astype(jnp.int32)
    minus_one = jnp.full(n, -1, jnp.int32)
    return EnvState(
        pos=pos,
        energy=jnp.where(alive, start, 0).astype(jnp.int32),
        age=jnp.zeros(n, jnp.int32),
        alive=alive,
        uid=uid,
        parent_uid=minus_one,
        parent_slot=minus_one,
        founder=uid,
        generation=jnp.zeros(n, jnp.int32),
        food=jnp.zeros(size * size, bool).at[cells[k:]].set(True).reshape(size, size),
        next_uid=jnp.asarray(k, jnp.int32),
        t=jnp.zeros((), jnp.int32),
    )


def observe(state: EnvState, params: EnvParams, values: WorldValues | None = None) -> jax.Array:
    """(max_agents, obs_size) float32: each agent's egocentric view and energy.

    The view is a (2r+1)x(2r+1) window centred on the agent with channels food,
    other agents, wall (outside the grid), flattened row-major (channel last), then
    energy / starting_energy clipped to [0, ENERGY_OBS_CAP]. Dead slots observe zeros.
    """
    size, r = params.grid_size, params.view_radius
    width = 2 * r + 1
    inner = jnp.stack([state.food, _occupied(state, size).reshape(size, size), jnp.zeros((size, size), bool)], -1)
    grid = jnp.pad(inner.astype(jnp.float32), ((r, r), (r, r), (0, 0)))
    grid = grid.at[..., 2].set(jnp.pad(jnp.zeros((size, size)), r, constant_values=1.0))
    views = jax.vmap(lambda p: jax.lax.dynamic_slice(grid, (p[0], p[1], 0), (width, width, 3)))(state.pos)
    views = views.at[:, r, r, 1].set(0.0)  # the agent itself is not "another agent"
    energy = jnp.clip(state.energy / _values(params, values).starting_energy, 0.0, ENERGY_OBS_CAP)
    obs = jnp.concatenate([views.reshape(params.max_agents, -1), energy[:, None].astype(jnp.float32)], -1)
    return jnp.where(state.alive[:, None], obs, 0.0)


def _first_by_priority(cell: jax.Array, wants: jax.Array, priority: jax.Array, size: int) -> jax.Array:
    """Which of the slots that want a cell win it: the one with the lowest `priority` per cell."""
    n = cell.shape[0]
    best = jnp.full(size * size, n).at[jnp.where(wants, cell, size * size)].min(priority, mode="drop")
    return wants & (best[cell] == priority)


def _move(key: jax.Array, state: EnvState, actions: jax.Array, size: int) -> EnvState:
    """Rule 1: moves into cells free at the start of the step; a random contender wins a tie."""
    target = state.pos + ACTION_DELTAS[actions]
    inside = jnp.all((target >= 0) & (target < size), -1)
    cell = _flat(jnp.clip(target, 0, size - 1), size)
    wants = state.alive & (actions != 0) & inside & ~_occupied(state, size)[cell]
    moved = _first_by_priority(cell, wants, jax.random.permutation(key, actions.shape[0]), size)
    return state.replace(pos=jnp.where(moved[:, None], target, state.pos))


def _capped(energy: jax.Array, values: WorldValues) -> jax.Array:
    """`energy` under the ceiling `max_energy` (0: none)."""
    ceiling = values.energy("max_energy")
    if isinstance(ceiling, int):
        return energy if ceiling == 0 else jnp.minimum(energy, ceiling)
    return jnp.where(ceiling > 0, jnp.minimum(energy, ceiling), energy)


def _eat(
    key: jax.Array, state: EnvState, params: EnvParams, values: WorldValues
) -> tuple[EnvState, jax.Array, jax.Array]:
    """Rule 2: eat the food underfoot (up to the ceiling), then missing items regrow on free cells.

    Returns the state, who ate, and the energy wasted above the ceiling.
    """
    size, k = params.grid_size, params.num_food
    cell = _flat(state.pos, size)
    food = state.food.reshape(-1)
    eaten = state.alive & food[cell]
    food = food.at[jnp.where(eaten, cell, size * size)].set(False, mode="drop")
    key_grow, key_cells = jax.random.split(key)
    missing = k - food.sum()
    grows = (jax.random.uniform(key_grow, (k,)) < values.food_regrowth) & (jnp.arange(k) < missing)
    cells, valid = _sample_cells(key_cells, ~food & ~_occupied(state, size), k)
    food = food.at[jnp.where(valid & grows, cells, size * size)].set(True, mode="drop")
    fed = state.energy + eaten * values.energy("food_energy")
    energy = _capped(fed, values)
    wasted = (fed - energy).sum(dtype=jnp.int32)
    return state.replace(food=food.reshape(size, size), energy=energy), eaten, wasted


def _pay_age_die(
    state: EnvState, actions: jax.Array, values: WorldValues
) -> tuple[EnvState, jax.Array, jax.Array, jax.Array]:
    """Rules 3 and 4: pay the step's cost, age, and die at zero energy.

    Returns the state, energy paid, who died, and the summed lifespans of the dead
    (taken now: a newborn may take a dead agent's slot in the same step).
    """
    cost = jnp.where(actions == 0, values.energy("living_cost"), values.energy("move_cost"))
    paid = jnp.where(state.alive, jnp.minimum(cost, state.energy), 0)
    energy = state.energy - paid
    age = state.age + state.alive
    died = state.alive & (energy <= 0)
    lifespans = jnp.where(died, age, 0).sum(dtype=jnp.int32)
    return state.replace(energy=energy, age=age, alive=state.alive & ~died), paid, died, lifespans


def _reproduce(key: jax.Array, state: EnvState, params: EnvParams, values: WorldValues) -> tuple[EnvState, jax.Array]:
    """Rule 5: ready parents place one child each on a free neighbour cell and slot, in a random order."""
    size, n = params.grid_size, params.max_agents
    key_turn, key_order = jax.random.split(key)
    slots = jnp.arange(n)
    rotation = (jax.random.randint(key_turn, (n, 1), 0, 4) + jnp.arange(4)) % 4
    candidates = state.pos[:, None, :] + ACTION_DELTAS[1:][rotation]  # (n, 4, 2)
    inside = jnp.all((candidates >= 0) & (candidates < size), -1)
    cells = _flat(jnp.clip(candidates, 0, size - 1), size)
    free = inside & ~_occupied(state, size)[cells]
    cell = jnp.take_along_axis(cells, jnp.argmax(free, -1)[:, None], 1)[:, 0]
    threshold, cost = values.energy("reproduce_threshold"), values.energy("reproduce_cost")
    priority = jax.random.permutation(key_order, n)
    ready = _first_by_priority(cell, state.alive & (state.energy >= threshold) & free.any(-1), priority, size)
    empty = ~state.alive
    slot_of_rank = jnp.full(n, n).at[jnp.where(empty, jnp.cumsum(empty) - 1, n)].set(slots, mode="drop")
    order = jnp.argsort(priority)  # slots, first priority first
    rank = jnp.zeros(n, jnp.int32).at[order].set(jnp.cumsum(ready[order]) - 1)
    child = jnp.where(ready, slot_of_rank[jnp.clip(rank, 0, n - 1)], n)
    ready = child < n

    def put(field: jax.Array, value: jax.Array) -> jax.Array:
        return field.at[child].set(value, mode="drop")

    uid = state.next_uid + rank
    state = state.replace(
        pos=put(state.pos, jnp.stack(jnp.divmod(cell, size), -1)),
        energy=put(state.energy - ready * cost, cost),
        age=put(state.age, 0),
        alive=put(state.alive, True),
        uid=put(state.uid, uid),
        parent_uid=put(state.parent_uid, state.uid),
        parent_slot=put(state.parent_slot, slots),
        founder=put(state.founder, state.founder),
        generation=put(state.generation, state.generation + 1),
        next_uid=state.next_uid + ready.sum(),
    )
    return state, put(jnp.zeros(n, bool), True)


def step(
    key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams, values: WorldValues | None = None
) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, jax.Array]]:
    """Advance one world by one step; see the module docstring for the rules.

    `values` (default `params.values()`) are the world's traced numbers. Returns
    `(obs, state, reward, done, info)`: `reward` (max_agents,) float32 is the food each
    slot ate this step; `info` holds int32 counts `births`, `deaths`, `food_eaten`,
    `population` (after the step), `energy_spent`, `energy_wasted` (above the ceiling),
    `lifespan_sum` (ages of the agents that died) and per-slot bool masks `born`, `died`.
    """
    values = _values(params, values)
    key_move, key_food, key_birth = jax.random.split(key, 3)
    actions = actions.astype(jnp.int32)
    state = _move(key_move, state, actions, params.grid_size)
    state, eaten, wasted = _eat(key_food, state, params, values)
    state, paid, died, lifespans = _pay_age_die(state, actions, values)
    state, born = _reproduce(key_birth, state, params, values)
    state = state.replace(t=state.t + 1)
    done = ~state.alive.any() | (state.t >= params.max_steps)
    info = {
        "births": born.sum(dtype=jnp.int32),
        "deaths": died.sum(dtype=jnp.int32),
        "food_eaten": eaten.sum(dtype=jnp.int32),
        "population": state.alive.sum(dtype=jnp.int32),
        "energy_spent": paid.sum(dtype=jnp.int32),
        "energy_wasted": wasted,
        "lifespan_sum": lifespans,
        "born": born,
        "died": died,
    }
    return observe(state, params, values), state, eaten.astype(jnp.float32), done, info


def reset(key: jax.Array, params: EnvParams, values: WorldValues | None = None) -> tuple[jax.Array, EnvState]:
    """A fresh world and its observations: `(obs, state)`."""
    state = reset_state(key, params, values)
    return observe(state, params, values), state
