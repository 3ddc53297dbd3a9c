"""The world's scarcity settings: a ceiling, food that regrows at a rate, and values traced per run."""

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emergence.envs import EnvParams, WorldValues, reset, step, traced_names

SCARCE = EnvParams(
    grid_size=8,
    max_agents=12,
    initial_agents=6,
    num_food=16,
    starting_energy=30,
    food_energy=30,
    reproduce_threshold=40,
    reproduce_cost=15,
    max_energy=60,
    food_regrowth=0.3,
    max_steps=1000,
)


@partial(jax.jit, static_argnames=("params", "num_steps"))
def random_run(key, params, num_steps, values=None):
    """Random actions for `num_steps` (values default to the params'); per-step (before, after, info)."""
    _, state = reset(key, params, values)

    def body(state, key):
        key_act, key_step = jax.random.split(key)
        actions = jax.random.randint(key_act, (params.max_agents,), 0, 5)
        _, after, _, _, info = step(key_step, state, actions, params, values)
        return after, (state, after, info)

    return jax.lax.scan(body, state, jax.random.split(key, num_steps))[1]


def test_energy_never_exceeds_the_ceiling_and_the_waste_keeps_bookkeeping_exact():
    before, after, info = random_run(jax.random.key(1), SCARCE, 400)
    assert int(after.energy.max()) <= SCARCE.max_energy
    delta = after.energy.sum(-1, where=after.alive) - before.energy.sum(-1, where=before.alive)
    expected = SCARCE.food_energy * info["food_eaten"] - info["energy_wasted"] - info["energy_spent"]
    np.testing.assert_array_equal(delta, expected)
    assert int(info["energy_wasted"].sum()) > 0 and int(info["births"].sum()) > 0 and int(info["deaths"].sum()) > 0


def test_food_regrows_at_its_rate_not_at_once():
    _, after, info = random_run(jax.random.key(2), SCARCE, 400)
    standing = np.asarray(after.food.sum((-1, -2)))
    assert standing.max() <= SCARCE.num_food and standing.mean() < SCARCE.num_food
    eager = dataclasses.replace(SCARCE, food_regrowth=1.0)
    _, after_eager, _ = random_run(jax.random.key(2), eager, 400)
    assert np.all(np.asarray(after_eager.food.sum((-1, -2))) == SCARCE.num_food)


@pytest.mark.slow  # 8 s; CI's slow stage runs it
def test_traced_values_give_what_the_same_static_values_give_bitwise():
    lean = dataclasses.replace(SCARCE, food_energy=8, max_energy=0, food_regrowth=0.7)
    as_arrays = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), lean.values())
    for got, want in zip(
        jax.tree.leaves(random_run(jax.random.key(3), SCARCE, 60, as_arrays)),
        jax.tree.leaves(random_run(jax.random.key(3), lean, 60)),
    ):
        np.testing.assert_array_equal(got, want)


def test_one_program_vmaps_over_worlds_with_different_values():
    food = jnp.asarray([5.0, 30.0])
    values = jax.tree.map(lambda x: jnp.full(2, x, jnp.float32), SCARCE.values()).replace(food_energy=food)
    runs = jax.vmap(lambda v: random_run(jax.random.key(4), SCARCE, 300, v))(values)
    population = np.asarray(runs[1].alive.sum(-1).mean(-1))
    assert population[1] > population[0]  # richer food feeds more agents


def test_births_are_not_won_by_the_lowest_slot():
    _, after, info = random_run(jax.random.key(5), dataclasses.replace(SCARCE, food_regrowth=1.0), 300)
    parents = np.asarray(after.parent_slot)[np.asarray(info["born"])]
    assert len(set(parents.tolist())) > 3


def test_the_traced_fields_are_the_world_values():
    assert set(traced_names()) == {f.name for f in dataclasses.fields(WorldValues)}
    assert "grid_size" not in traced_names() and "max_agents" not in traced_names()


def test_bad_scarcity_settings_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="max_energy=50 must be 0 .* reproduce_threshold=120"):
        EnvParams(max_energy=50)
    with pytest.raises(ValueError, match="food_regrowth=0.0 must be a chance per step"):
        EnvParams(food_regrowth=0.0)
