"""The PPO learner keeps its promises: pure, deterministic updates; masked dead slots;
children inherit mutated heads; named eval metrics. That the quick preset learns is
tests/lab/test_cli_train.py's slow test, through the command the README runs."""

import dataclasses
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from emergence.envs import EnvParams, observe
from emergence.lab.agents import PPOConfig, PPOTask, random_policy_metrics, run_episodes
from emergence.lab.agents.evolution import behaviour_similarity, inherit, weight_diversity
from emergence.lab.agents.networks import policy
from emergence.lab.agents.ppo import EVAL_SALT, Batch, gae, ppo_loss
from emergence.lab.tracking import policy_probe
from tests.helpers import quick_compiles  # noqa: F401  (a fixture: pytestmark below)

TINY = PPOConfig(
    env=EnvParams(grid_size=8, max_agents=8, initial_agents=4, num_food=6, view_radius=1, max_steps=40),
    num_envs=4,
    rollout_len=8,
    num_epochs=2,
    num_minibatches=2,
    hidden_sizes=(16,),
    eval_envs=2,
    eval_steps=10,
    mutation_std=0.05,
)
EVAL_KEYS = {"eval/mean_return", "eval/food_per_agent_step", "eval/population", "eval/lifespan"}


pytestmark = pytest.mark.usefixtures("quick_compiles")  # XLA without most optimisations in this module


@pytest.fixture(scope="module")
def task():
    return PPOTask(TINY)


@pytest.fixture(scope="module")
def train_step(task):
    return jax.jit(task.train_step)


def run(task, train_step, steps):
    state = task.init_state(jax.random.key(0))
    for _ in range(steps):
        state, metrics = train_step(state)
    return state, metrics


@pytest.mark.slow  # 10 s; CI's slow stage runs it
def test_train_step_is_deterministic_and_counts_updates(task, train_step):
    (first, metrics_a), (second, metrics_b) = run(task, train_step, 3), run(task, train_step, 3)
    leaves = lambda tree: jax.tree.leaves(
        jax.tree.map(
            lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree
        )
    )
    for a, b in zip(leaves((first, metrics_a)), leaves((second, metrics_b))):
        np.testing.assert_array_equal(a, b)
    assert int(first.step) == 3 and jax.dtypes.issubdtype(first.rng.dtype, jax.dtypes.prng_key)
    assert float(metrics_a["env/steps"]) == 3 * TINY.num_envs * TINY.rollout_len


MAY_BE_ABSENT = {"env/age_at_death", "env/selection_opportunity", "env/food_gini"}
"""NaN means no value this update (no death, no birth, fewer than two full-window agents): the logger leaves it out."""


def test_metrics_are_finite_scalars(task, train_step):
    _, metrics = run(task, train_step, 1)
    assert {
        "loss/total",
        "loss/policy",
        "loss/value",
        "loss/entropy",
        "env/food_per_agent_step",
        "env/population",
        "env/births",
        "env/deaths",
        "env/mean_reward",
        "evolution/weight_diversity",
        "evolution/behaviour_similarity",
    } <= set(metrics)
    for name, value in metrics.items():
        assert value.shape == () and (bool(jnp.isfinite(value)) or name in MAY_BE_ABSENT), name


def random_batch(key, envs=2, steps=3, slots=5, obs_size=TINY.env.obs_size):
    keys = jax.random.split(key, 7)
    shape = (steps, envs, slots)
    return Batch(
        obs=jax.random.normal(keys[0], shape + (obs_size,)),
        action=jax.random.randint(keys[1], shape, 0, 5),
        logp=-jax.random.uniform(keys[2], shape, minval=1.0, maxval=2.0),
        value=jax.random.normal(keys[3], shape),
        advantage=jax.random.normal(keys[4], shape),
        target=jax.random.normal(keys[5], shape),
        mask=jax.random.bernoulli(keys[6], 0.6, shape),
    )


def test_dead_slots_are_masked_out_of_loss_and_gradients(task):
    state = task.init_state(jax.random.key(1))
    heads = jax.tree.map(lambda x: x[:2, :5], state.extra["agent_params"])
    batch = random_batch(jax.random.key(2))
    alive = jnp.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], bool)
    probes = (jax.random.normal(jax.random.key(3), (2, 5, TINY.env.obs_size)), alive)
    junk = random_batch(jax.random.key(4))
    scrambled = Batch(
        *[
            jnp.where(batch.mask.reshape(batch.mask.shape + (1,) * (x.ndim - 3)), x, y)
            for x, y in zip(batch[:-1], junk[:-1])
        ],
        mask=batch.mask,
    )
    scrambled_probes = (jnp.where(alive[..., None], probes[0], 7.0), alive)
    grad = jax.jit(
        jax.grad(lambda p, a, b, pr: ppo_loss(task.network, task.hyper(), p, a, b, pr), (0, 1), has_aux=True)
    )
    want, want_parts = grad(state.params, heads, batch, probes)
    got, got_parts = grad(state.params, heads, scrambled, scrambled_probes)
    chex.assert_trees_all_close((want, want_parts), (got, got_parts), rtol=1e-6, atol=1e-7)


def test_birth_copies_the_parents_head_plus_noise_of_mutation_std():
    heads = {
        "w": jax.random.normal(jax.random.key(0), (2, 6, 64, 5)),
        "b": jax.random.normal(jax.random.key(1), (2, 6, 5)),
    }
    born = jnp.zeros((2, 6), bool).at[0, 4].set(True).at[1, 2].set(True)
    parent = jnp.zeros((2, 6), jnp.int32).at[0, 4].set(1).at[1, 2].set(5)
    child = inherit(jax.random.key(2), heads, born, parent, 0.05)
    noise = np.concatenate(
        [
            np.concatenate([child["w"][e, s].ravel() - heads["w"][e, p].ravel(), child["b"][e, s] - heads["b"][e, p]])
            for e, s, p in [(0, 4, 1), (1, 2, 5)]
        ]
    )
    assert np.std(noise) == pytest.approx(0.05, rel=0.1) and abs(np.mean(noise)) < 0.01
    for name in heads:
        keep = ~np.asarray(born)
        np.testing.assert_array_equal(np.asarray(child[name])[keep], np.asarray(heads[name])[keep])


def test_rollout_births_inherit_head_and_adam_moments(task):
    state = task.init_state(jax.random.key(5))
    env = state.extra["env"]
    energy = jnp.where(env.alive, 60, 0).at[0, 0].set(10_000)  # only world 0, slot 0 can breed
    extra = state.extra | {"env": env.replace(energy=energy, food=jnp.zeros_like(env.food))}
    moments = jax.random.normal(jax.random.key(6), state.extra["agent_params"]["w"].shape)
    extra["agent_opt_state"] = optax.tree_map_params(
        task.agent_tx, lambda x: moments if x.ndim == 4 else x, extra["agent_opt_state"]
    )
    no_regrowth = task.hyper() | {"food_regrowth": 1e-9}  # the emptied grid stays empty
    after, traj = jax.jit(lambda *a: task.rollout(*a, no_regrowth))(jax.random.key(7), state.params, extra)
    children = np.flatnonzero(np.asarray(after["env"].alive[0]) & (np.asarray(after["env"].parent_slot[0]) == 0))
    assert len(children) >= 3 and int(traj.born.sum()) == len(children)
    before, now = extra["agent_params"], after["agent_params"]
    noise = np.concatenate([np.asarray(now["w"][0, s] - before["w"][0, 0]).ravel() for s in children])
    assert np.std(noise) == pytest.approx(TINY.mutation_std, rel=0.2)
    mu = after["agent_opt_state"][0].mu["w"]
    np.testing.assert_array_equal(mu[0, children], np.broadcast_to(moments[0, 0], mu[0, children].shape))
    np.testing.assert_array_equal(now["w"][1:], before["w"][1:])  # no births elsewhere


def test_eval_step_reports_named_metrics_without_touching_state(task):
    state = task.init_state(jax.random.key(0))
    metrics = jax.jit(task.eval_step)(state)
    assert set(metrics) == EVAL_KEYS
    for value in metrics.values():
        assert value.shape == () and bool(jnp.isfinite(value))
    assert float(metrics["eval/population"]) > 0
    baseline = jax.jit(lambda k: random_policy_metrics(k, TINY))(jax.random.fold_in(state.rng, EVAL_SALT))
    assert set(baseline) == EVAL_KEYS


def test_run_episodes_logs_every_step_for_renderers_and_trackers(task):
    state = task.init_state(jax.random.key(0))
    log = run_episodes(
        jax.random.key(1), TINY, state.params, state.extra["agent_params"], mode="sample", num_envs=3, num_steps=5
    )
    assert log.states.pos.shape == (5, 3, TINY.env.max_agents, 2) and log.actions.shape == (5, 3, TINY.env.max_agents)
    assert log.population.shape == log.food_eaten.shape == (5, 3)
    np.testing.assert_array_equal(log.states.alive[1:].sum(-1), log.population[:-1])


def test_config_is_json_and_names_its_structural_keys(task):
    saved = json.loads(json.dumps(task.config()))
    assert PPOConfig.from_dict(saved) == TINY and task.name == "ppo"
    for key in task.structural_keys:
        node = saved
        for part in key.split("."):
            node = node[part]


def test_gae_stops_at_each_agents_end():
    reward, value = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.5, 0.5, 0.5])
    done = jnp.array([False, True, False])
    advantage, target = gae(reward, value, done, jnp.asarray(10.0), gamma=0.9, lam=0.8)
    a2 = 3.0 + 0.9 * 10.0 - 0.5
    a1 = 2.0 - 0.5
    a0 = 1.0 + 0.9 * 0.5 - 0.5 + 0.9 * 0.8 * a1
    np.testing.assert_allclose(advantage, [a0, a1, a2], rtol=1e-6)
    np.testing.assert_allclose(target, advantage + value, rtol=1e-6)


def test_population_terms_measure_what_docs_say():
    alive = jnp.array([[True, True, True, False]])
    same = {"w": jnp.ones((1, 4, 3, 5)), "b": jnp.ones((1, 4, 5))}
    assert float(weight_diversity(same, alive)) == pytest.approx(0.0, abs=1e-6)
    spread = {"w": jax.random.normal(jax.random.key(0), (1, 4, 300, 5)), "b": jnp.zeros((1, 4, 5))}
    assert float(weight_diversity(spread, alive)) == pytest.approx(2 / 3, rel=0.05)
    one_hot = jnp.broadcast_to(jax.nn.one_hot(2, 5), (1, 4, 4, 5))
    assert float(behaviour_similarity(one_hot, alive)) == pytest.approx(1.0)
    assert float(behaviour_similarity(jnp.full((1, 4, 4, 5), 0.2), alive)) == pytest.approx(1.0)  # alike at random
    apart = jnp.broadcast_to(jax.nn.one_hot(jnp.arange(4), 5)[None, :, None], (1, 4, 4, 5))
    assert float(behaviour_similarity(apart, alive)) == pytest.approx(0.0, abs=1e-6)  # each its own action


def test_training_without_evolution_keeps_no_agent_heads():
    task = PPOTask(dataclasses.replace(TINY, evolution=False))
    state, metrics = jax.jit(task.train_step)(task.init_state(jax.random.key(0)))
    assert set(state.extra) == {"env", "world_steps"} and not any(k.startswith("evolution/") for k in metrics)
    assert set(jax.jit(task.eval_step)(state)) == EVAL_KEYS


def test_the_trackers_probe_judges_every_head_with_the_policy_formula(task):
    state = task.init_state(jax.random.key(3))
    out = jax.jit(policy_probe(task))(state)
    obs = jax.vmap(lambda s: observe(s, TINY.env))(state.extra["env"])
    alive = np.asarray(state.extra["env"].alive)
    slots = alive.shape[1]
    for e, s in [(0, 0), (1, 2)]:
        head = jax.tree.map(lambda x: x[e : e + 1, s : s + 1], state.extra["agent_params"])
        logits, _, _ = policy(task.network, state.params, head, obs.reshape(-1, 1, 1, obs.shape[-1]))
        want = (jax.nn.softmax(logits[:, 0, 0]) * alive.reshape(-1, 1)).sum(0) * alive[e, s]
        np.testing.assert_allclose(out["action_counts"][e * slots + s], want, rtol=1e-5, atol=1e-5)
