"""The foraging world keeps its rules: energy bookkeeping, birth, death, one agent per cell."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emergence.envs import EnvParams, EnvState, observe, render, reset, reset_state, step

SMALL = EnvParams(
    grid_size=8,
    max_agents=12,
    initial_agents=6,
    num_food=6,
    starting_energy=12,
    food_energy=10,
    reproduce_threshold=15,
    reproduce_cost=5,
    move_cost=2,
    living_cost=1,
    view_radius=2,
    max_steps=60,
)
STAY, UP, DOWN, LEFT, RIGHT = range(5)


def world(params: EnvParams, positions, energies, food=()) -> EnvState:
    """A hand-made world: agents in slots 0.. at `positions`, food at `food` cells."""
    state = reset_state(jax.random.key(0), params)
    n, k = params.max_agents, len(positions)
    alive = jnp.arange(n) < k
    grid = np.zeros((params.grid_size,) * 2, bool)
    for row, col in food:
        grid[row, col] = True
    return state.replace(
        pos=jnp.zeros((n, 2), jnp.int32).at[:k].set(jnp.array(positions, jnp.int32)),
        energy=jnp.zeros(n, jnp.int32).at[:k].set(jnp.array(energies, jnp.int32)),
        alive=alive,
        uid=jnp.where(alive, jnp.arange(n), -1),
        founder=jnp.where(alive, jnp.arange(n), -1),
        food=jnp.asarray(grid),
        next_uid=jnp.asarray(k, jnp.int32),
    )


def act(state, actions, params, key=1):
    acts = jnp.zeros(params.max_agents, jnp.int32).at[: len(actions)].set(jnp.array(actions, jnp.int32))
    return jax.jit(step, static_argnames="params")(jax.random.key(key), state, acts, params)


@partial(jax.jit, static_argnames=("params", "num_steps"))
def random_run(key, params, num_steps):
    """Random actions for `num_steps`; the per-step states and infos, stacked."""
    _, state = reset(key, params)

    def body(state, key):
        key_act, key_step = jax.random.split(key)
        actions = jax.random.randint(key_act, (params.max_agents,), 0, 5)
        _, after, _, _, info = step(key_step, state, actions, params)
        return after, (state, after, info)

    return jax.lax.scan(body, state, jax.random.split(key, num_steps))[1]


def test_energy_bookkeeping_is_exact_every_step():
    before, after, info = random_run(jax.random.key(3), SMALL, 300)
    delta = after.energy.sum(-1, where=after.alive) - before.energy.sum(-1, where=before.alive)
    paid_by_parents = SMALL.reproduce_cost * info["births"]
    given_to_children = SMALL.reproduce_cost * info["births"]
    expected = SMALL.food_energy * info["food_eaten"] - info["energy_spent"] - paid_by_parents + given_to_children
    np.testing.assert_array_equal(delta, expected)
    assert int(info["energy_wasted"].sum()) == 0  # no ceiling
    assert info["births"].sum() > 0 and info["deaths"].sum() > 0  # the run exercised both rules


def test_no_two_alive_agents_share_a_cell_over_many_random_steps():
    runs = jax.vmap(lambda k: random_run(k, SMALL, 200))(jax.random.split(jax.random.key(4), 16))
    after = runs[1]
    cells = np.asarray(after.pos[..., 0] * SMALL.grid_size + after.pos[..., 1])
    alive = np.asarray(after.alive)
    for run_cells, run_alive in zip(cells.reshape(-1, SMALL.max_agents), alive.reshape(-1, SMALL.max_agents)):
        occupied = run_cells[run_alive]
        assert len(np.unique(occupied)) == len(occupied)
    assert np.all(np.asarray(after.food).sum((-1, -2)) == SMALL.num_food)
    assert np.all(np.asarray(after.pos) >= 0) and np.all(np.asarray(after.pos) < SMALL.grid_size)


def test_reproduction_places_child_next_to_parent_with_reproduce_cost_energy():
    state = world(SMALL, [(3, 3)], [20])
    _, after, _, _, info = act(state, [STAY], SMALL)
    assert int(info["births"]) == 1 and bool(info["born"][1])
    assert int(after.energy[0]) == 20 - SMALL.living_cost - SMALL.reproduce_cost
    assert int(after.energy[1]) == SMALL.reproduce_cost and int(after.age[1]) == 0
    assert abs(np.asarray(after.pos[1] - after.pos[0])).sum() == 1
    assert (int(after.uid[1]), int(after.parent_uid[1]), int(after.parent_slot[1])) == (1, 0, 0)
    assert (int(after.generation[1]), int(after.founder[1]), int(after.next_uid)) == (1, 0, 2)


def test_no_birth_below_threshold_or_without_free_cell_or_slot():
    below = world(SMALL, [(3, 3)], [SMALL.reproduce_threshold])  # pays living cost first
    assert int(act(below, [STAY], SMALL)[4]["births"]) == 0
    boxed = world(SMALL, [(0, 0), (0, 1), (1, 0)], [30, 3, 3])  # corner, both neighbours taken
    assert int(act(boxed, [STAY] * 3, SMALL)[4]["births"]) == 0
    full = EnvParams(grid_size=8, max_agents=2, initial_agents=1, num_food=1, reproduce_threshold=15, reproduce_cost=5)
    crowded = world(full, [(2, 2), (5, 5)], [30, 30])
    _, after, _, _, info = act(crowded, [STAY, STAY], full)
    assert int(info["births"]) == 0 and int(after.energy[0]) == 30 - full.living_cost


def test_agent_dies_at_zero_energy_and_frees_its_slot_and_cell():
    state = world(SMALL, [(3, 3), (5, 5)], [1, 9]).replace(age=jnp.full(SMALL.max_agents, 7, jnp.int32))
    _, after, _, done, info = act(state, [RIGHT, STAY], SMALL)
    assert not bool(after.alive[0]) and int(after.energy[0]) == 0 and bool(info["died"][0])
    assert int(info["deaths"]) == 1 and int(info["lifespan_sum"]) == 8
    assert int(info["energy_spent"]) == 1 + SMALL.living_cost  # the cost took only what was left
    assert not bool(done)
    _, _, _, done, _ = act(world(SMALL, [(3, 3)], [1]), [STAY], SMALL)
    assert bool(done)  # everyone is dead


def test_a_newborn_may_take_the_slot_freed_by_a_death_in_the_same_step():
    state = world(SMALL, [(3, 3), (5, 5)], [1, 30]).replace(age=jnp.array([4] + [9] * 11, jnp.int32))
    _, after, _, _, info = act(state, [RIGHT, STAY], SMALL)
    assert bool(info["died"][0]) and bool(info["born"][0]) and bool(after.alive[0])
    assert int(info["lifespan_sum"]) == 5  # the dead agent's, not the newborn's
    assert (int(after.parent_slot[0]), int(after.energy[0]), int(after.age[0])) == (1, SMALL.reproduce_cost, 0)


def test_move_conflicts_one_random_contender_wins_and_occupied_cells_block():
    state = world(SMALL, [(2, 1), (2, 3), (4, 4), (4, 5), (0, 0)], [9] * 5)
    winners = set()
    for key in range(12):
        _, after, _, _, _ = act(state, [RIGHT, LEFT, RIGHT, RIGHT, UP], SMALL, key=key)
        pos = np.asarray(after.pos[:5]).tolist()
        assert sorted([pos[0], pos[1]]) in ([[2, 1], [2, 2]], [[2, 2], [2, 3]])  # both aimed at (2, 2): one moved
        winners.add(0 if pos[0] == [2, 2] else 1)
        assert pos[2] == [4, 4] and pos[3] == [4, 6]  # (4, 5) was occupied at the start: blocked
        assert pos[4] == [0, 0]  # the wall blocks, and the move is still paid
        assert int(after.energy[4]) == 9 - SMALL.move_cost
    assert winners == {0, 1}  # not the lowest slot every time


def test_eating_gains_food_energy_and_food_regrows_at_once_by_default():
    state = world(SMALL, [(3, 3)], [3], food=[(3, 4), (6, 6)])
    _, after, reward, _, info = act(state, [RIGHT], SMALL)
    assert int(info["food_eaten"]) == 1 and float(reward[0]) == 1.0
    assert int(after.energy[0]) == 3 + SMALL.food_energy - SMALL.move_cost
    assert int(after.food.sum()) == SMALL.num_food and not bool(after.food[3, 4])  # every missing item grew back


def test_episode_ends_after_max_steps():
    state = world(SMALL, [(3, 3)], [500]).replace(t=jnp.asarray(SMALL.max_steps - 1, jnp.int32))
    assert bool(act(state, [STAY], SMALL)[3])


def test_observation_shows_food_walls_and_energy():
    state = world(SMALL, [(0, 0), (1, 1)], [6, 24], food=[(0, 2)])
    obs = np.asarray(observe(state, SMALL))
    r, width = SMALL.view_radius, 2 * SMALL.view_radius + 1
    view = obs[0, :-1].reshape(width, width, 3)
    assert obs.shape == (SMALL.max_agents, SMALL.obs_size)
    assert view[r, r + 2, 0] == 1.0 and view[r + 1, r + 1, 1] == 1.0 and view[r, r, 1] == 0.0
    assert view[r - 1, r, 2] == 1.0 and view[r, r, 2] == 0.0  # wall above, none underfoot
    assert obs[0, -1] == pytest.approx(6 / SMALL.starting_energy)
    assert np.all(obs[2:] == 0.0)  # dead slots observe nothing


@pytest.mark.slow  # 8 s; CI's slow stage runs it
def test_vmap_over_32_envs_equals_32_single_env_calls_bitwise():
    keys = jax.random.split(jax.random.key(5), 32)
    batched = jax.jit(jax.vmap(lambda k: random_run(k, SMALL, 20)))(keys)
    for i in range(0, 32, 5):
        single = random_run(keys[i], SMALL, 20)
        for got, want in zip(jax.tree.leaves(jax.tree.map(lambda x: x[i], batched)), jax.tree.leaves(single)):
            np.testing.assert_array_equal(got, want)


def test_render_gives_uint8_rgb_of_the_grid():
    _, state = reset(jax.random.key(0), SMALL)
    image = jax.jit(render, static_argnames=("params", "cell_px"))(state, SMALL, cell_px=4)
    assert image.shape == (SMALL.grid_size * 4, SMALL.grid_size * 4, 3) and image.dtype == jnp.uint8
    assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) >= 3  # background, food, agents


def test_invalid_params_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="reproduce_threshold"):
        EnvParams(reproduce_threshold=10, reproduce_cost=50)
