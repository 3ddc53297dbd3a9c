"""A flax linen model in flax's own `train_state.TrainState`, extended as the flax tutorial does.

The state is a `TrainState` subclass with two extra fields: BatchNorm's `batch_stats`
and a dropout `key`. `TrainState.create` makes `step` the Python int 0; the Trainer
stores and restores it as the weakly typed int32 it becomes after one step, so resume
is bitwise. Each step draws its minibatch and dropout mask from `fold_in(key, step)`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from emergence.examples.regression import make_dataset


class TrainState(train_state.TrainState):
    """flax's TrainState plus BatchNorm statistics and a dropout key (both checkpointed)."""

    batch_stats: Any
    key: jax.Array


class BatchNormMLP(nn.Module):
    hidden: int = 32
    dropout: float = 0.1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.Dense(self.hidden)(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
        return nn.Dense(1)(x)


class LinenTask:
    """Fit `make_dataset` with a BatchNorm + Dropout MLP held in a flax `TrainState` subclass."""

    name = "linen_regression"

    def __init__(
        self, hidden: int = 32, batch_size: int = 64, dataset_size: int = 2048, learning_rate: float = 3e-3
    ) -> None:
        self.model, self.batch_size = BatchNormMLP(hidden), batch_size
        self.optimizer = optax.adam(learning_rate)
        x, y = make_dataset(dataset_size, seed=0)
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)

    def config(self) -> dict[str, Any]:
        return {"hidden": self.model.hidden, "batch_size": self.batch_size}

    def init_state(self, rng: jax.Array) -> TrainState:
        init_key, dropout_key = jax.random.split(rng)
        variables = self.model.init(init_key, self.x[:2], train=False)
        return TrainState.create(
            apply_fn=self.model.apply,
            params=variables["params"],
            tx=self.optimizer,
            batch_stats=variables["batch_stats"],
            key=dropout_key,
        )

    def train_step(self, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        batch_key, dropout_key = jax.random.split(jax.random.fold_in(state.key, state.step))
        index = jax.random.randint(batch_key, (self.batch_size,), 0, self.x.shape[0])

        def loss_fn(params: Any) -> tuple[jax.Array, Any]:
            prediction, updates = state.apply_fn(
                {"params": params, "batch_stats": state.batch_stats},
                self.x[index],
                train=True,
                rngs={"dropout": dropout_key},
                mutable=["batch_stats"],
            )
            return jnp.mean((prediction - self.y[index]) ** 2), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads=grads).replace(batch_stats=updates["batch_stats"])
        return state, {"loss": loss}

    def eval_step(self, state: TrainState) -> dict[str, jax.Array]:
        prediction = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, self.x, train=False)
        return {"val_loss": jnp.mean((prediction - self.y) ** 2)}
