"""The foraging world: agents on a grid move, eat, reproduce and die. Pure JAX.

Everything is a pure function of (key, state, actions, params), so it runs under
`jax.jit` (with `params` static) and `jax.vmap` over environments.

One `step`, in this order, for all agent slots at once:

1. Move. Action 0 stays, 1-4 move up / down / left / right. A move succeeds only
   into a cell inside the grid that no alive agent held at the start of the step;
   when several agents aim at the same free cell the lowest slot wins. Failed moves
   stay put. So no two alive agents ever share a cell, and swaps cannot happen.
2. Eat. An agent standing on food gains `food_energy`; each eaten item respawns at
   a random cell holding neither food nor an agent (food stays at `num_food`).
3. Pay. Every alive agent pays `move_cost` if it chose to move (blocked or not),
   else `living_cost`. A cost larger than the energy left takes what is left, so
   energy never goes below zero.
4. Age and die. Every agent alive at the start of the step ages by one; agents at
   energy <= 0 die (their age is their lifespan), freeing slot and cell.
5. Reproduce. An agent with energy >= `reproduce_threshold` places one child on a
   free neighbouring cell (first free one in a random rotation of the four
   directions) in the lowest free slot (parents in slot order); two parents aiming
   at the same cell: the lower slot wins. The parent pays `reproduce_cost` and the
   child starts with exactly `reproduce_cost` energy, age 0.

Energy is int32 and its bookkeeping is exact. With E the total energy of alive agents,
``E_after - E_before = food_energy * food_eaten - energy_spent
- reproduce_cost * births + reproduce_cost * births``: the last two terms (what
parents pay, what children receive) cancel; agents die at exactly zero energy, so
death removes none.

`done` is true when every agent is dead or `max_steps` steps have run. `step` never
resets: auto-reset is the learner's business (see `emergence.lab.agents.ppo`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

NUM_ACTIONS = 5
ACTION_DELTAS = jnp.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], jnp.int32)
ENERGY_OBS_CAP = 4.0  # observed energy is energy / starting_energy, clipped to this


@dataclasses.dataclass(frozen=True)
class EnvParams:
    """Static settings of the world (hashable: pass it as a static jit argument)."""

    grid_size: int = 16
    """side of the square world, in cells"""
    max_agents: int = 32
    """agent slots per world (the population cap; changes the state's shapes)"""
    initial_agents: int = 8
    """agents alive at reset"""
    num_food: int = 20
    """food items on the grid; an eaten one respawns on a free cell"""
    starting_energy: int = 200
    """energy of each founder"""
    food_energy: int = 100
    """energy gained by eating one food item"""
    reproduce_threshold: int = 120
    """energy at which an agent gives birth into a free neighbouring cell"""
    reproduce_cost: int = 50
    """energy a parent pays at birth; the child starts with it"""
    move_cost: int = 2
    """energy paid per move (not for staying)"""
    living_cost: int = 1
    """energy paid every step by every alive agent"""
    view_radius: int = 3
    """the egocentric view is (2r+1) x (2r+1) cells (changes the observation size)"""
    max_steps: int = 500
    """episode length: `done` after this many steps (the learner then resets the world)"""

    def __post_init__(self) -> None:
        problems = []
        if self.grid_size < 2:
            problems.append(f"grid_size={self.grid_size} must be at least 2")
        if not 1 <= self.initial_agents <= self.max_agents:
            problems.append(f"initial_agents={self.initial_agents} must be in 1..max_agents={self.max_agents}")
        if self.initial_agents + self.num_food > self.grid_size**2:
            problems.append(
                f"initial_agents + num_food = {self.initial_agents + self.num_food} "
                f"does not fit in {self.grid_size}x{self.grid_size} cells"
            )
        if self.reproduce_threshold <= self.reproduce_cost:
            problems.append(
                f"reproduce_threshold={self.reproduce_threshold} must exceed "
                f"reproduce_cost={self.reproduce_cost} (a parent must survive giving birth)"
            )
        if min(self.starting_energy, self.reproduce_cost, self.max_steps) < 1:
            problems.append("starting_energy, reproduce_cost and max_steps must be positive")
        if min(self.food_energy, self.move_cost, self.living_cost, self.view_radius, self.num_food) < 0:
            problems.append("food_energy, move_cost, living_cost, view_radius, num_food must be >= 0")
        if problems:
            raise ValueError("invalid EnvParams: " + "; ".join(problems))

    @property
    def obs_size(self) -> int:
        """Length of one agent's observation: 3 view channels plus energy."""
        return 3 * (2 * self.view_radius + 1) ** 2 + 1


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


def reset_state(key: jax.Array, params: EnvParams) -> EnvState:
    """A fresh world: `initial_agents` founders and `num_food` food on distinct cells."""
    size, n, k = params.grid_size, params.max_agents, params.initial_agents
    cells, _ = _sample_cells(key, jnp.ones(size * size, bool), k + params.num_food)
    slots = jnp.arange(n)
    alive = slots < k
    pos = jnp.zeros((n, 2), jnp.int32).at[:k].set(jnp.stack(jnp.divmod(cells[:k], size), -1))
    uid = jnp.where(alive, slots, -1).astype(jnp.int32)
    minus_one = jnp.full(n, -1, jnp.int32)
    return EnvState(
        pos=pos,
        energy=jnp.where(alive, params.starting_energy, 0).astype(jnp.int32),
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


def observe(state: EnvState, params: EnvParams) -> jax.Array:
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
    energy = jnp.clip(state.energy / params.starting_energy, 0.0, ENERGY_OBS_CAP)
    obs = jnp.concatenate([views.reshape(params.max_agents, -1), energy[:, None].astype(jnp.float32)], -1)
    return jnp.where(state.alive[:, None], obs, 0.0)


def _move(state: EnvState, actions: jax.Array, size: int) -> EnvState:
    """Rule 1: moves into cells free at the start of the step; lowest slot wins ties."""
    n = actions.shape[0]
    slots = jnp.arange(n)
    target = state.pos + ACTION_DELTAS[actions]
    inside = jnp.all((target >= 0) & (target < size), -1)
    cell = _flat(jnp.clip(target, 0, size - 1), size)
    wants = state.alive & (actions != 0) & inside & ~_occupied(state, size)[cell]
    winner = jnp.full(size * size, n).at[jnp.where(wants, cell, size * size)].min(slots, mode="drop")
    moved = wants & (winner[cell] == slots)
    return state.replace(pos=jnp.where(moved[:, None], target, state.pos))


def _eat(key: jax.Array, state: EnvState, params: EnvParams) -> tuple[EnvState, jax.Array]:
    """Rule 2: eat the food underfoot and respawn as many items on free cells."""
    size = params.grid_size
    cell = _flat(state.pos, size)
    food = state.food.reshape(-1)
    eaten = state.alive & food[cell]
    food = food.at[jnp.where(eaten, cell, size * size)].set(False, mode="drop")
    most = min(params.num_food, params.max_agents)
    cells, valid = _sample_cells(key, ~food & ~_occupied(state, size), most)
    valid = valid & (jnp.arange(most) < eaten.sum())
    food = food.at[jnp.where(valid, cells, size * size)].set(True, mode="drop")
    energy = state.energy + eaten * params.food_energy
    return state.replace(food=food.reshape(size, size), energy=energy), eaten


def _pay_age_die(
    state: EnvState, actions: jax.Array, params: EnvParams
) -> tuple[EnvState, jax.Array, jax.Array, jax.Array]:
    """Rules 3 and 4: pay the step's cost, age, and die at zero energy.

    Returns the state, energy paid, who died, and the summed lifespans of the dead
    (taken now: a newborn may take a dead agent's slot in the same step).
    """
    cost = jnp.where(actions == 0, params.living_cost, params.move_cost)
    paid = jnp.where(state.alive, jnp.minimum(cost, state.energy), 0)
    energy = state.energy - paid
    age = state.age + state.alive
    died = state.alive & (energy <= 0)
    lifespans = jnp.where(died, age, 0).sum(dtype=jnp.int32)
    return state.replace(energy=energy, age=age, alive=state.alive & ~died), paid, died, lifespans


def _reproduce(key: jax.Array, state: EnvState, params: EnvParams) -> tuple[EnvState, jax.Array]:
    """Rule 5: ready parents place one child each on a free neighbour cell and slot."""
    size, n = params.grid_size, params.max_agents
    slots = jnp.arange(n)
    rotation = (jax.random.randint(key, (n, 1), 0, 4) + jnp.arange(4)) % 4
    candidates = state.pos[:, None, :] + ACTION_DELTAS[1:][rotation]  # (n, 4, 2)
    inside = jnp.all((candidates >= 0) & (candidates < size), -1)
    cells = _flat(jnp.clip(candidates, 0, size - 1), size)
    free = inside & ~_occupied(state, size)[cells]
    cell = jnp.take_along_axis(cells, jnp.argmax(free, -1)[:, None], 1)[:, 0]
    ready = state.alive & (state.energy >= params.reproduce_threshold) & free.any(-1)
    winner = jnp.full(size * size, n).at[jnp.where(ready, cell, size * size)].min(slots, mode="drop")
    ready = ready & (winner[cell] == slots)
    empty = ~state.alive
    slot_of_rank = jnp.full(n, n).at[jnp.where(empty, jnp.cumsum(empty) - 1, n)].set(slots, mode="drop")
    rank = jnp.cumsum(ready) - 1
    child = jnp.where(ready, slot_of_rank[jnp.clip(rank, 0, n - 1)], n)
    ready = child < n

    def put(field: jax.Array, value: jax.Array) -> jax.Array:
        return field.at[child].set(value, mode="drop")

    uid = state.next_uid + rank
    state = state.replace(
        pos=put(state.pos, jnp.stack(jnp.divmod(cell, size), -1)),
        energy=put(state.energy - ready * params.reproduce_cost, params.reproduce_cost),
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
    key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams
) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, jax.Array]]:
    """Advance one world by one step; see the module docstring for the rules.

    Returns `(obs, state, reward, done, info)`: `reward` (max_agents,) float32 is the
    food each slot ate this step; `info` holds int32 counts `births`, `deaths`,
    `food_eaten`, `population` (after the step), `energy_spent`, `lifespan_sum` (ages
    of the agents that died) and per-slot bool masks `born`, `died`.
    """
    key_food, key_birth = jax.random.split(key)
    actions = actions.astype(jnp.int32)
    state = _move(state, actions, params.grid_size)
    state, eaten = _eat(key_food, state, params)
    state, paid, died, lifespans = _pay_age_die(state, actions, params)
    state, born = _reproduce(key_birth, state, params)
    state = state.replace(t=state.t + 1)
    done = ~state.alive.any() | (state.t >= params.max_steps)
    info = {
        "births": born.sum(dtype=jnp.int32),
        "deaths": died.sum(dtype=jnp.int32),
        "food_eaten": eaten.sum(dtype=jnp.int32),
        "population": state.alive.sum(dtype=jnp.int32),
        "energy_spent": paid.sum(dtype=jnp.int32),
        "lifespan_sum": lifespans,
        "born": born,
        "died": died,
    }
    return observe(state, params), state, eaten.astype(jnp.float32), done, info


def reset(key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
    """A fresh world and its observations: `(obs, state)`."""
    state = reset_state(key, params)
    return observe(state, params), state
