"""steps_over_batches: one call over a stack of K batches is K steps, bitwise."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from emergence.data import steps_over_batches
from emergence.data.stacking import stack


def train_step(state, batch):
    loss = jnp.mean((batch["x"] @ state["w"] - batch["y"]) ** 2)
    grad = jax.grad(lambda w: jnp.mean((batch["x"] @ w - batch["y"]) ** 2))(state["w"])
    return {"w": state["w"] - 0.1 * grad, "step": state["step"] + 1}, {"loss": loss}


def test_one_fused_call_over_k_stacked_batches_equals_k_single_steps():
    rng = np.random.default_rng(0)
    batches = [
        {"x": rng.normal(size=(8, 3)).astype(np.float32), "y": rng.normal(size=(8,)).astype(np.float32)}
        for _ in range(4)
    ]
    state = {"w": jnp.zeros(3), "step": jnp.zeros((), jnp.int32)}
    single = jax.jit(steps_over_batches(train_step, 1))
    one_by_one, losses = state, []
    for batch in batches:
        one_by_one, metrics = single(one_by_one, batch)
        losses.append(metrics["loss"])
    fused, metrics = jax.jit(steps_over_batches(train_step, 4))(state, stack(batches))
    chex.assert_trees_all_equal(fused, one_by_one)
    chex.assert_trees_all_close(metrics["loss"], jnp.mean(jnp.stack(losses)), rtol=1e-6)
