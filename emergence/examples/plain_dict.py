"""The smallest state there is: a dict of arrays. Params, optimizer state and a key; no framework class.

The Trainer counts steps itself, so the dict needs no `step`; the minibatch comes from
the key the dict carries, split anew each step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from emergence.examples.regression import make_dataset


def predict(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """A one-hidden-layer tanh MLP written by hand."""
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


class DictTask:
    """Fit `make_dataset` with a hand-written MLP whose whole state is `{"params", "opt_state", "rng"}`."""

    name = "dict_regression"

    def __init__(self, hidden: int = 32, batch_size: int = 64, dataset_size: int = 2048) -> None:
        self.hidden, self.batch_size = hidden, batch_size
        self.optimizer = optax.adam(3e-3)
        x, y = make_dataset(dataset_size, seed=0)
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)

    def init_state(self, rng: jax.Array) -> dict[str, Any]:
        rng, k1, k2 = jax.random.split(rng, 3)
        params = {
            "w1": jax.random.normal(k1, (1, self.hidden)),
            "b1": jnp.zeros(self.hidden),
            "w2": jax.random.normal(k2, (self.hidden, 1)) / self.hidden**0.5,
            "b2": jnp.zeros(1),
        }
        return {"params": params, "opt_state": self.optimizer.init(params), "rng": rng}

    def train_step(self, state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        rng, batch_key = jax.random.split(state["rng"])
        index = jax.random.randint(batch_key, (self.batch_size,), 0, self.x.shape[0])
        loss_fn = lambda p: jnp.mean((predict(p, self.x[index]) - self.y[index]) ** 2)
        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt_state": opt_state, "rng": rng}, {"loss": loss}
