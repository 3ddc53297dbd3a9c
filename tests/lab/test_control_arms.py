"""The control arms do what their names say: fresh heads at birth, heads changed only by mutation and selection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emergence.envs import EnvParams
from emergence.lab.agents import PPOConfig, PPOTask
from emergence.lab.agents.evolution import inherit

SMALL = PPOConfig(
    env=EnvParams(grid_size=8, max_agents=8, initial_agents=4, num_food=6, view_radius=1, max_steps=40),
    num_envs=2,
    rollout_len=8,
    num_epochs=1,
    num_minibatches=1,
    hidden_sizes=(8,),
    eval_envs=2,
    eval_steps=8,
    mutation_std=0.05,
)


def test_without_inheritance_a_newborn_gets_a_fresh_random_head_not_its_parents():
    heads = {"w": jnp.full((1, 4, 3, 5), 10.0), "b": jnp.full((1, 4, 5), 10.0)}
    born = jnp.array([[False, True, False, False]])
    parent = jnp.zeros((1, 4), jnp.int32)
    fresh = inherit(jax.random.key(0), heads, born, parent, 0.05, inherit_heads=0.0)
    kept = inherit(jax.random.key(0), heads, born, parent, 0.05, inherit_heads=1.0)
    assert abs(float(fresh["w"][0, 1].mean())) < 0.1 and float(fresh["w"][0, 1].std()) == pytest.approx(0.05, rel=0.5)
    assert float(kept["w"][0, 1].mean()) == pytest.approx(10.0, abs=0.1)
    np.testing.assert_array_equal(fresh["w"][0, 0], heads["w"][0, 0])  # no birth, no change


@pytest.mark.slow
def test_without_head_training_heads_change_only_where_a_child_was_born():
    task = PPOTask(SMALL)
    state = task.init_state(jax.random.key(1))
    frozen = task.hyper() | {"train_heads": 0.0}
    after, _ = jax.jit(lambda s: task.train_step_with(s, frozen))(state)
    trained, _ = jax.jit(task.train_step)(state)
    changed = np.asarray(jnp.any(after.extra["agent_params"]["b"] != state.extra["agent_params"]["b"], -1))
    born = np.asarray(after.extra["env"].uid != state.extra["env"].uid) & np.asarray(after.extra["env"].alive)
    assert not (changed & ~born).any()  # every changed head is a newborn's
    assert np.asarray(jnp.any(trained.extra["agent_params"]["b"] != state.extra["agent_params"]["b"], -1)).sum() > (
        changed.sum()
    )
