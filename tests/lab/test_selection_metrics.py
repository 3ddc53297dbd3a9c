"""The selection and specialisation metrics measure what their docstrings say, on hand-made rollouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emergence.lab.agents.selection import gini, lineages, offspring_dispersion
from emergence.lab.agents.specialisation import specialisation_index, specialisation_metrics


def test_offspring_dispersion_is_crows_index_of_the_window_agents():
    # one world, three slots, four steps: slot 0 has two children (into slots 1, 2) and dies; 1 and 2 live on
    ended = jnp.zeros((4, 1, 3), bool).at[2, 0, 0].set(True)
    born = jnp.zeros((4, 1, 3), bool).at[0, 0, 1].set(True).at[1, 0, 2].set(True)
    parent = jnp.zeros((4, 1, 3), jnp.int32)
    alive_end = jnp.array([[False, True, True]])
    kids = np.array([2.0, 0.0, 0.0])  # the dead parent, and its two children at the window's end
    expected = kids.var() / kids.mean() ** 2
    assert float(offspring_dispersion(ended, born, parent, alive_end)) == pytest.approx(expected)
    no_births = offspring_dispersion(ended, jnp.zeros_like(born), parent, alive_end)
    assert np.isnan(float(no_births))  # no offspring at all: no value, not 0


def test_gini_is_zero_for_equal_shares_and_three_quarters_when_one_of_four_eats_everything():
    mask = jnp.ones(4, bool)
    assert float(gini(jnp.full(4, 3.0), mask)) == pytest.approx(0.0)
    assert float(gini(jnp.array([0.0, 0.0, 0.0, 8.0]), mask)) == pytest.approx(0.75)
    assert float(gini(jnp.array([0.0, 0.0, 5.0, 5.0]), jnp.array([False, False, True, True]))) == pytest.approx(0.0)
    assert np.isnan(float(gini(jnp.array([1.0, 2.0]), jnp.array([True, False]))))  # one agent: no inequality to measure


def test_lineages_count_founders_with_an_alive_descendant():
    class Worlds:
        alive = jnp.array([[True, True, True, False], [True, False, False, False]])
        founder = jnp.array([[0, 0, 2, 1], [3, 1, 1, 1]])

    np.testing.assert_array_equal(lineages(Worlds, founders=4), [2, 1])


def test_specialisation_index_is_zero_for_alike_agents_and_one_for_agents_each_with_its_own_action():
    alike = jnp.tile(jnp.array([1.0, 2.0, 3.0, 0.0, 0.0]), (4, 1))
    own = jnp.eye(5)[:4] * 7.0
    assert float(specialisation_index(alike)) == pytest.approx(0.0, abs=1e-6)
    assert float(specialisation_index(own)) == pytest.approx(1.0)
    assert np.isnan(float(specialisation_index(jnp.zeros((4, 5)))))


class Linear:
    """A stand-in network: shared logits that follow the observation, features = the observation itself."""

    def apply(self, params, obs):
        return 3.0 * jnp.concatenate([obs, jnp.zeros(obs.shape[:-1] + (2,))], -1), None, obs


def test_excess_over_shuffled_heads_is_zero_without_heads_and_positive_when_heads_carry_the_differences():
    key = jax.random.key(0)
    obs = jax.random.normal(key, (16, 2, 4, 3))  # (steps, envs, slots, features)
    mask = jnp.ones((16, 2, 4), bool)
    no_heads = specialisation_metrics(key, Linear(), None, None, obs, mask)
    assert float(no_heads["spec/excess"]) == 0.0 and float(no_heads["spec/index"]) > 0.0  # situations differ
    biased = {"w": jnp.zeros((2, 4, 3, 5)), "b": 6.0 * jnp.broadcast_to(jnp.eye(5)[:4], (2, 4, 5))}
    with_heads = specialisation_metrics(key, Linear(), None, biased, obs, mask)
    assert float(with_heads["spec/index"]) > 0.5 and float(with_heads["spec/excess"]) > 0.1
