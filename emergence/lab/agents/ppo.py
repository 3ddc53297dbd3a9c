"""PPO on the foraging world as a Task: rollout, GAE and minibatch epochs in one jit.

One `train_step` (PureJaxRL style, all `lax.scan`, no host syncs):

1. Rollout: `rollout_len` steps of `num_envs` worlds (vmapped); every alive agent
   slot samples an action from the shared network (plus its own head with evolution
   on). Worlds that end (`done`) are reset on the spot; newborns inherit their
   parent's head with mutation as they are born.
2. GAE per agent slot. A slot's trajectory ends when its agent dies, its world ends,
   or its slot changes hands; the value is not bootstrapped across that end.
3. `num_epochs` passes over `num_minibatches` minibatches of whole worlds with the
   clipped PPO objective (advantages normalised per minibatch):
   ``loss = policy + vf_coef * value - ent_coef * entropy
   - diversity_bonus * weight_diversity + niche_pressure * behaviour_similarity``
   (the last two only with evolution; see `emergence.lab.agents.evolution`; the
   objective and GAE live in `emergence.lab.agents.loss`).

The values that only enter the computation (learning rate, coefficients, discounts,
mutation std; `emergence.lab.agents.hyper.TRACED`) come from a `hyper` mapping, not
from the config: `train_step` passes the config's own floats, and a sweep passes each
vmapped run its own traced scalars through `train_step_with(state, hyper)`.

Masking: a sample counts only if its slot held an alive agent when it acted, and
(with evolution) no child was born into that slot later in the rollout, because
the update evaluates every slot with its final head.

So one train_step = `num_envs * rollout_len` env steps and `state.step` + 1; each world counts its
own steps in `extra["world_steps"]` (env steps are their sum: `env_steps.py`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from emergence.envs import NUM_ACTIONS, EnvState, observe, reset_state, step
from emergence.lab.agents import evolution
from emergence.lab.agents.config import STRUCTURAL_KEYS, PPOConfig
from emergence.lab.agents.env_steps import upgrade_world_steps
from emergence.lab.agents.evaluation import evaluate, make_network
from emergence.lab.agents.hyper import Hyper, evolution_weight, hyperparameters, weigh_heads, world_values
from emergence.lab.agents.loss import Batch, gae, ppo_loss  # noqa: F401  (Batch, gae: the learner's API)
from emergence.lab.agents.networks import init_agent_params, policy
from emergence.lab.agents.selection import selection_metrics
from emergence.lab.agents.specialisation import specialisation_metrics
from emergence.parallel.mesh import shard_extra
from emergence.state import TrainState

EVAL_SALT = 0x5EED  # eval keys are fold_in(state.rng, EVAL_SALT): state.rng itself is untouched


class Transition(NamedTuple):
    """One rollout step; every field is (envs, slots, ...) except the per-world counts."""

    obs: jax.Array
    action: jax.Array
    logp: jax.Array
    value: jax.Array
    reward: jax.Array
    alive: jax.Array  # the slot held an alive agent when it acted
    done: jax.Array  # that agent's trajectory ended with this step
    born: jax.Array  # a child took the slot after this step
    parent: jax.Array  # the slot of that child's parent
    counts: dict[str, jax.Array]  # per-world info counts summed over worlds


class PPOTask:
    """The emergence lab's learner: PPO (with optional evolution) on the foraging world.

    `state.params` is the shared network; `state.extra` holds `env` (the batched
    `EnvState` of `num_envs` worlds) and, with evolution on, `agent_params`
    (per-(env, slot) heads) and `agent_opt_state` (their Adam state, copied from the
    parent at birth).
    """

    name = "ppo"
    structural_keys = set(STRUCTURAL_KEYS)

    def __init__(self, config: PPOConfig = PPOConfig(), axis_name: str | None = None) -> None:
        self.cfg = config
        self.axis_name = axis_name
        self.network = make_network(config)
        self.tx, self.agent_tx = self.optimizers(self.hyper())

    def hyper(self) -> dict[str, float]:
        """This config's traced values as Python floats: what `train_step` passes to `train_step_with`."""
        return hyperparameters(self.cfg)

    @staticmethod
    def optimizers(hyper: Hyper) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
        """(shared, per-head) optimisers for `hyper`'s lr and clip; their state's structure never depends on them."""
        return (
            optax.chain(optax.clip_by_global_norm(hyper["max_grad_norm"]), optax.adam(hyper["lr"])),
            optax.adam(hyper["lr"]),
        )

    def config(self) -> dict[str, Any]:
        """The JSON-able config (`PPOConfig.to_dict`)."""
        return self.cfg.to_dict()

    def init_state(self, rng: jax.Array) -> TrainState:
        """Fresh network, optimiser, worlds and (with evolution) per-slot heads."""
        return self.init_state_with(rng, self.hyper())

    def init_state_with(self, rng: jax.Array, hyper: Hyper) -> TrainState:
        """`init_state` with the world's traced values (founders' energy) from `hyper`, a sweep run's own."""
        cfg, env = self.cfg, self.cfg.env
        rng, key_net, key_env, key_agents = jax.random.split(rng, 4)
        params = self.network.init(key_net, jnp.zeros((1, env.obs_size)))
        values = world_values(hyper)
        worlds = jax.vmap(lambda k: reset_state(k, env, values))(jax.random.split(key_env, cfg.num_envs))
        extra: dict[str, Any] = {"env": worlds, "world_steps": jnp.zeros(cfg.num_envs, jnp.int32)}
        if cfg.evolution:
            agents = init_agent_params(
                key_agents, cfg.num_envs, env.max_agents, cfg.hidden_sizes[-1], NUM_ACTIONS, cfg.mutation_std
            )
            extra |= {"agent_params": agents, "agent_opt_state": self.agent_tx.init(agents)}
        return TrainState.create(params=params, opt_state=self.tx.init(params), rng=rng, extra=extra)

    def state_sharding(self, mesh: Any, state: TrainState) -> TrainState:
        """Data parallel (`Trainer(devices=...)`): the `num_envs` worlds and heads split across devices."""
        return shard_extra(mesh, state)

    def upgrade_checkpoint(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A checkpoint from before `extra/world_steps` counted each world's steps: every update is taken to
        have been `rollout_len` steps long (true unless `--ppo.rollout-len` changed before this release)."""
        return upgrade_world_steps(arrays, self.cfg.rollout_len)

    def _observe(self, env_state: EnvState, hyper: Hyper) -> jax.Array:
        values = world_values(hyper)
        return jax.vmap(lambda s: observe(s, self.cfg.env, values))(env_state)

    def _advance(self, key: jax.Array, env_state: EnvState, actions: jax.Array, hyper: Hyper):
        """Step every world; worlds that end (extinct, or after `max_steps`) are replaced by fresh ones."""
        env, values = self.cfg.env, world_values(hyper)
        key_step, key_reset = jax.random.split(key)
        keys = jax.random.split(key_step, self.cfg.num_envs)
        _, after, reward, done, info = jax.vmap(lambda k, s, a: step(k, s, a, env, values))(keys, env_state, actions)

        def reset_done() -> EnvState:
            fresh = jax.vmap(lambda k: reset_state(k, env, values))(jax.random.split(key_reset, self.cfg.num_envs))
            pick = lambda new, old: jnp.where(done.reshape(done.shape + (1,) * (old.ndim - 1)), new, old)
            return jax.tree.map(pick, fresh, after)

        return jax.lax.cond(self._anywhere(done), reset_done, lambda: after), after, reward, done, info

    def rollout(
        self, key: jax.Array, params: Any, extra: dict[str, Any], hyper: Hyper | None = None
    ) -> tuple[dict[str, Any], Transition]:
        """`rollout_len` steps of all worlds with sampled actions: (new extra, transitions)."""
        hyper = hyper or self.hyper()
        mutation_std = hyper["mutation_std"]

        def one_step(carry, key):
            extra = carry
            key_act, key_env, key_mutate = jax.random.split(key, 3)
            env_state, agents = extra["env"], extra.get("agent_params")
            obs = self._observe(env_state, hyper)
            logits, value, _ = policy(self.network, params, weigh_heads(agents, hyper), obs)
            action = jax.random.categorical(key_act, logits)
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[..., None], -1)[..., 0]
            next_state, after, reward, done, info = self._advance(key_env, env_state, action, hyper)
            same_agent = after.alive & (after.uid == env_state.uid)
            born = info["born"] & ~done[:, None]
            extra = extra | {"env": next_state}
            if agents is not None:
                extra |= self._inherit(key_mutate, extra, born, after.parent_slot, mutation_std, hyper)
            counts = {k: info[k].sum() for k in ("births", "deaths", "food_eaten", "energy_spent", "lifespan_sum")}
            counts |= {"episodes": done.sum(), "energy": jnp.where(env_state.alive, env_state.energy, 0).sum()}
            ended = env_state.alive & (done[:, None] | ~same_agent)
            transition = Transition(
                obs, action, logp, value, reward, env_state.alive, ended, born, after.parent_slot, counts
            )
            return extra, transition

        return jax.lax.scan(one_step, extra, jax.random.split(key, self.cfg.rollout_len))

    def _inherit(
        self,
        key: jax.Array,
        extra: dict[str, Any],
        born: jax.Array,
        parent_slot: jax.Array,
        mutation_std: Any,
        hyper: Hyper,
    ) -> dict[str, Any]:
        """Newborns take their parent's head (mutated; fresh with `inherit_heads` 0) and its Adam moments."""

        def births() -> dict[str, Any]:
            agents = evolution.inherit(
                key, extra["agent_params"], born, parent_slot, mutation_std, hyper["inherit_heads"]
            )
            opt = optax.tree_map_params(
                self.agent_tx, lambda x: evolution.copy_rows(x, born, parent_slot), extra["agent_opt_state"]
            )
            return {"agent_params": agents, "agent_opt_state": opt}

        keep = lambda: {"agent_params": extra["agent_params"], "agent_opt_state": extra["agent_opt_state"]}
        return jax.lax.cond(self._anywhere(born), births, keep)

    def _anywhere(self, mask: jax.Array) -> jax.Array:
        """`mask.any()`; vmapped over the runs of a sweep (`axis_name`), whether any run's is true.

        A `lax.cond` on a per-run predicate becomes a select that does both branches' work
        for every run; on this one shared predicate it stays a branch. Both branches agree
        where the mask is all false (a reset or birth of nobody changes nothing, bit for
        bit), so each run computes exactly what it computes alone.
        """
        anyone = mask.any()
        return anyone if self.axis_name is None else jax.lax.psum(anyone.astype(jnp.int32), self.axis_name) > 0

    def _batch(
        self, params: Any, extra: dict[str, Any], traj: Transition, hyper: Hyper
    ) -> tuple[Batch, tuple[jax.Array, jax.Array]]:
        """GAE and masks for the collected rollout, plus the probes for population terms."""
        env_state, agents = extra["env"], extra.get("agent_params")
        last_obs = self._observe(env_state, hyper)
        _, last_value, _ = policy(self.network, params, agents, last_obs)
        advantage, target = gae(
            traj.reward,
            traj.value,
            traj.done,
            jnp.where(env_state.alive, last_value, 0.0),
            hyper["gamma"],
            hyper["gae_lambda"],
        )
        mask = traj.alive
        if agents is not None:
            born_later = jnp.flip(jnp.cumsum(jnp.flip(traj.born, 0), 0), 0) > 0
            if "evolution" in hyper:  # without evolution a birth does not change how a slot acts
                born_later = born_later & (hyper["evolution"] > 0)
            mask = mask & ~born_later
        batch = Batch(traj.obs, traj.action, traj.logp, traj.value, advantage, target, mask)
        return batch, (last_obs, env_state.alive)

    def _update(
        self,
        key: jax.Array,
        state: TrainState,
        extra: dict[str, Any],
        batch: Batch,
        probes: tuple[jax.Array, jax.Array],
        hyper: Hyper,
    ):
        """`num_epochs` x `num_minibatches` gradient steps on groups of whole worlds."""
        cfg = self.cfg
        evolving = "agent_params" in extra
        tx, agent_tx = self.optimizers(hyper)
        grad_fn = jax.value_and_grad(
            lambda p, a, b, pr: ppo_loss(self.network, hyper, p, a, b, pr), (0, 1), has_aux=True
        )

        def minibatch(carry, envs):
            params, opt_state, agents, agent_opt = carry
            mb = jax.tree.map(lambda x: x[:, envs], batch)
            rows = jax.tree.map(lambda x: x[envs], agents) if evolving else None
            (_, parts), (grads, row_grads) = grad_fn(params, rows, mb, jax.tree.map(lambda x: x[envs], probes))
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            if evolving:
                agent_grads = jax.tree.map(lambda g, x: jnp.zeros_like(x).at[envs].set(g), row_grads, agents)
                updates, agent_opt = agent_tx.update(agent_grads, agent_opt, agents)
                agents = optax.apply_updates(agents, self._head_updates(updates, hyper["train_heads"]))
            return (params, opt_state, agents, agent_opt), parts

        def epoch(carry, key):
            groups = jax.random.permutation(key, cfg.num_envs).reshape(cfg.num_minibatches, -1)
            return jax.lax.scan(minibatch, carry, groups)

        carry = (state.params, state.opt_state, extra.get("agent_params"), extra.get("agent_opt_state"))
        carry, parts = jax.lax.scan(epoch, carry, jax.random.split(key, cfg.num_epochs))
        return carry, jax.tree.map(jnp.mean, parts)

    def train_step(self, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        """One PPO update from `num_envs * rollout_len` fresh env steps; pure and jittable."""
        return self.train_step_with(state, self.hyper())

    def train_step_with(self, state: TrainState, hyper: Hyper) -> tuple[TrainState, dict[str, jax.Array]]:
        """`train_step` with the traced values taken from `hyper` (a sweep's per-run scalars) instead of the config."""
        rng, key_rollout, key_update = jax.random.split(state.rng, 3)
        extra, traj = self.rollout(key_rollout, state.params, state.extra, hyper)
        extra = extra | {"world_steps": extra["world_steps"] + self.cfg.rollout_len}
        batch, probes = self._batch(state.params, extra, traj, hyper)
        heads = weigh_heads(extra.get("agent_params"), hyper)
        metrics = specialisation_metrics(
            jax.random.fold_in(key_update, 1), self.network, state.params, heads, traj.obs, batch.mask
        )
        (params, opt_state, agents, agent_opt), losses = self._update(key_update, state, extra, batch, probes, hyper)
        if agents is not None:
            extra = extra | {"agent_params": agents, "agent_opt_state": agent_opt}
        metrics |= (
            losses
            | self._rollout_metrics(traj, extra["world_steps"])
            | selection_metrics(traj, extra["env"], self.cfg.env.initial_agents)
        )
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, rng=rng, extra=extra)
        return new_state, metrics

    @staticmethod
    def _head_updates(updates: Any, train_heads: Any) -> Any:
        """The heads' Adam updates, scaled by `train_heads` (0: heads change only by mutation and selection)."""
        if isinstance(train_heads, float) and train_heads == 1.0:
            return updates
        return jax.tree.map(lambda u: train_heads * u, updates)

    def _rollout_metrics(self, traj: Transition, world_steps: jax.Array) -> dict[str, jax.Array]:
        """Foraging statistics of the rollout, as float32 scalars (selection ones: `selection.selection_metrics`)."""
        counts = {k: v.sum().astype(jnp.float32) for k, v in traj.counts.items()}
        agent_steps = traj.alive.sum().astype(jnp.float32)
        env_steps = self.cfg.env_steps_per_update
        return {
            "env/food_per_agent_step": counts["food_eaten"] / jnp.maximum(agent_steps, 1.0),
            "env/mean_reward": traj.reward.sum() / env_steps,
            "env/mean_energy": counts["energy"] / jnp.maximum(agent_steps, 1.0),
            "env/lifespan": counts["lifespan_sum"] / jnp.maximum(counts["deaths"], 1.0),
            "env/energy_spent": counts["energy_spent"],
            "env/episodes": counts["episodes"],
            "env/steps": world_steps.sum().astype(jnp.float32),
        }

    def eval_step(self, state: TrainState) -> dict[str, jax.Array]:
        """Greedy episodes on fresh worlds (see `evaluation.evaluate`); state is untouched."""
        return self.eval_step_with(state, self.hyper())

    def eval_step_with(self, state: TrainState, hyper: Hyper) -> dict[str, jax.Array]:
        """`eval_step` with `hyper`'s mutation std for births during the episodes."""
        key = jax.random.fold_in(state.rng, EVAL_SALT)
        heads = weigh_heads(state.extra.get("agent_params"), hyper)
        return evaluate(
            key,
            self.cfg,
            state.params,
            heads,
            mode="greedy",
            mutation_std=hyper["mutation_std"] * evolution_weight(hyper),
            values=world_values(hyper),
            inherit_heads=hyper["inherit_heads"],
        )
