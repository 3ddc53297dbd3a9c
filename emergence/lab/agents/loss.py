"""The clipped PPO objective with the population terms, and GAE: what one minibatch update minimises.

``loss = policy + vf_coef * value - ent_coef * entropy - diversity_bonus * weight_diversity
+ niche_pressure * behaviour_similarity`` (the last two only with evolution; see
`emergence.lab.agents.evolution`), advantages normalised per minibatch, masked samples
left out. Coefficients come from `hyper` (`emergence.lab.agents.hyper`): the config's
floats for a single run, a sweep run's traced scalars otherwise.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from emergence.lab.agents import evolution
from emergence.lab.agents.hyper import Hyper, weigh_heads
from emergence.lab.agents.networks import policy


class Batch(NamedTuple):
    """What the loss needs, (steps, envs, slots, ...)."""

    obs: jax.Array
    action: jax.Array
    logp: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    mask: jax.Array


def gae(
    reward: jax.Array, value: jax.Array, done: jax.Array, last_value: jax.Array, gamma: float, lam: float
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates and value targets over the leading time axis."""

    def back(carry, step_data):
        advantage, next_value = carry
        r, v, d = step_data
        keep = 1.0 - d
        advantage = r + gamma * next_value * keep - v + gamma * lam * keep * advantage
        return (advantage, v), advantage

    _, advantage = jax.lax.scan(
        back, (jnp.zeros_like(last_value), last_value), (reward, value, done.astype(reward.dtype)), reverse=True
    )
    return advantage, advantage + value


def _masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def ppo_loss(
    network: Any, hyper: Hyper, params: Any, agent_params: Any, batch: Batch, probes: tuple[jax.Array, jax.Array]
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The minimised objective for one minibatch (see module docstring) and its parts.

    `agent_params` rows and `probes = (obs, alive)` (envs, slots, ...) line up with the
    batch's env axis; masked samples contribute nothing to the loss or its gradient.
    `hyper` gives the coefficients (`hyperparameters(config)` or a sweep run's traced ones).
    """
    clip_eps = hyper["clip_eps"]
    agent_params = weigh_heads(agent_params, hyper)
    mask = batch.mask.astype(jnp.float32)
    logits, value, _ = policy(network, params, agent_params, batch.obs)
    log_probs = jax.nn.log_softmax(logits)
    logp = jnp.take_along_axis(log_probs, batch.action[..., None], -1)[..., 0]
    log_ratio = jnp.where(batch.mask, logp - batch.logp, 0.0)
    ratio = jnp.exp(log_ratio)
    mean = _masked_mean(batch.advantage, mask)
    std = jnp.sqrt(_masked_mean((batch.advantage - mean) ** 2, mask))
    advantage = (batch.advantage - mean) / (std + 1e-8)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    policy_loss = -_masked_mean(jnp.minimum(ratio * advantage, clipped * advantage), mask)
    value_clipped = batch.value + jnp.clip(value - batch.value, -clip_eps, clip_eps)
    value_loss = 0.5 * _masked_mean(jnp.maximum((value - batch.target) ** 2, (value_clipped - batch.target) ** 2), mask)
    entropy = _masked_mean(-(jnp.exp(log_probs) * log_probs).sum(-1), mask)
    parts = {
        "loss/policy": policy_loss,
        "loss/value": value_loss,
        "loss/entropy": entropy,
        "loss/approx_kl": _masked_mean(ratio - 1.0 - log_ratio, mask),
        "loss/clip_frac": _masked_mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32), mask),
    }
    loss = policy_loss + hyper["vf_coef"] * value_loss - hyper["ent_coef"] * entropy
    if agent_params is not None:
        diversity, similarity = _population_terms(network, params, agent_params, probes)
        bonus, pressure = hyper["diversity_bonus"], hyper["niche_pressure"]
        if "evolution" in hyper:  # a sweep run with evolution weighted 0 or 1
            bonus, pressure = bonus * hyper["evolution"], pressure * hyper["evolution"]
        loss = loss - bonus * diversity + pressure * similarity
        parts |= {"evolution/weight_diversity": diversity, "evolution/behaviour_similarity": similarity}
    return loss, parts | {"loss/total": loss}


def _population_terms(
    network: Any, params: Any, agent_params: Any, probes: tuple[jax.Array, jax.Array]
) -> tuple[jax.Array, jax.Array]:
    """Weight diversity and behaviour similarity of the alive agents, per env, averaged."""
    obs, alive = probes
    shared_logits, _, features = network.apply(params, obs)  # (envs, probes, ...)
    personal = jnp.einsum("eoh,eiha->eioa", features, agent_params["w"]) + agent_params["b"][:, :, None]
    probs = jax.nn.softmax(shared_logits[:, None] + personal)
    return evolution.weight_diversity(agent_params, alive), evolution.behaviour_similarity(probs, alive)
