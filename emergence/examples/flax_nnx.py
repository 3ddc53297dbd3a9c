"""flax NNX, two ways: the modules handed to `NNXTask`, or split into graphdef + state by hand.

Both train the same BatchNorm + Dropout MLP with `nnx.Optimizer`. The state the Trainer
checkpoints is the NNX `State` of the model, the optimizer and the `nnx.Rngs` that draw
minibatches and dropout masks: resume is bitwise.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from emergence.examples.regression import make_dataset
from emergence.nnx import NNXTask


class MLP(nnx.Module):
    def __init__(self, hidden: int, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(1, hidden, rngs=rngs)
        self.norm = nnx.BatchNorm(hidden, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)
        self.out = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.dropout(nnx.relu(self.norm(self.hidden(x)))))


def regression(hidden: int = 32, batch_size: int = 64, dataset_size: int = 2048) -> NNXTask:
    """An `NNXTask` fitting `make_dataset`: build the modules, write the step as NNX code does."""
    x, y = (jnp.asarray(a) for a in make_dataset(dataset_size, seed=0))

    def create(rngs: nnx.Rngs) -> dict[str, Any]:
        model = MLP(hidden, rngs)
        return {"model": model, "optimizer": nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param), "rngs": rngs}

    def loss_fn(model: MLP, index: jax.Array) -> jax.Array:
        return jnp.mean((model(x[index]) - y[index]) ** 2)

    def step(m: dict[str, Any]) -> dict[str, jax.Array]:
        index = jax.random.randint(m["rngs"].data(), (batch_size,), 0, x.shape[0])
        loss, grads = nnx.value_and_grad(loss_fn)(m["model"], index)
        m["optimizer"].update(m["model"], grads)
        return {"loss": loss}

    def evaluate(m: dict[str, Any]) -> dict[str, jax.Array]:
        m["model"].eval()
        return {"val_loss": loss_fn(m["model"], jnp.arange(x.shape[0]))}

    return NNXTask(
        create, step, evaluate=evaluate, name="nnx_regression", config={"hidden": hidden, "batch_size": batch_size}
    )


class NNXSplitTask:
    """The same model as a plain Task: the graphdef lives on the task, the NNX `State` is the run's state."""

    name = "nnx_split_regression"

    def __init__(self, hidden: int = 32, batch_size: int = 64, dataset_size: int = 2048) -> None:
        self.hidden, self.batch_size = hidden, batch_size
        self.x, self.y = (jnp.asarray(a) for a in make_dataset(dataset_size, seed=0))
        self.graphdef, _ = nnx.split(nnx.eval_shape(lambda: self._build(jax.random.key(0))))

    def _build(self, rng: jax.Array) -> tuple[MLP, nnx.Optimizer, nnx.Rngs]:
        rngs = nnx.Rngs(rng)
        model = MLP(self.hidden, rngs)
        return model, nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param), rngs

    def init_state(self, rng: jax.Array) -> nnx.State:
        return nnx.split(self._build(rng))[1]

    def train_step(self, state: nnx.State) -> tuple[nnx.State, dict[str, jax.Array]]:
        model, optimizer, rngs = nnx.merge(self.graphdef, state)
        index = jax.random.randint(rngs.data(), (self.batch_size,), 0, self.x.shape[0])
        loss_fn = lambda m: jnp.mean((m(self.x[index]) - self.y[index]) ** 2)
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer, rngs)), {"loss": loss}
