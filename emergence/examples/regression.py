"""RegressionTask: an MLP fitting a noisy 1-D function generated in code.

The smallest real Task: data lives in the task (generated from `data_seed`), each
step samples a minibatch with the state's own PRNG key, so a run is a pure function
of config + seed + state and resumes bitwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from emergence.state import TrainState


@dataclass(frozen=True)
class RegressionConfig:
    """Sizes and optimiser settings; `hidden` and `dtype` change the state's shapes."""

    hidden: tuple[int, ...] = (64, 64)
    learning_rate: float = 3e-3
    batch_size: int = 64
    dataset_size: int = 2048
    data_seed: int = 0
    dtype: str = "float32"


class MLP(nn.Module):
    hidden: tuple[int, ...]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = nn.tanh(nn.Dense(width, dtype=self.dtype, param_dtype=self.dtype)(x))
        return nn.Dense(1, dtype=self.dtype, param_dtype=self.dtype)(x)


def make_dataset(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x in [-3, 3], y = sin(2x) + x/3 + noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, size=(size, 1)).astype(np.float32)
    y = np.sin(2 * x) + x / 3 + 0.05 * rng.standard_normal(size=(size, 1)).astype(np.float32)
    return x, y.astype(np.float32)


class RegressionTask:
    """Fit `make_dataset` with an MLP and Adam; eval reports `val_loss` on held-out data."""

    name = "regression"
    structural_keys = {"hidden", "dtype"}

    def __init__(self, config: RegressionConfig | None = None, **overrides: Any) -> None:
        self.cfg = dataclasses.replace(config or RegressionConfig(), **overrides)
        self.model = MLP(tuple(self.cfg.hidden), dtype=jnp.dtype(self.cfg.dtype))
        self.optimizer = optax.adam(self.cfg.learning_rate)
        x, y = make_dataset(self.cfg.dataset_size, self.cfg.data_seed)
        split = self.cfg.dataset_size * 3 // 4
        self.train_x, self.train_y = jnp.asarray(x[:split]), jnp.asarray(y[:split])
        self.val_x, self.val_y = jnp.asarray(x[split:]), jnp.asarray(y[split:])

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def init_state(self, rng: jax.Array) -> TrainState:
        init_key, rng = jax.random.split(rng)
        params = self.model.init(init_key, self.train_x[:1].astype(self.cfg.dtype))
        return TrainState.create(params, self.optimizer.init(params), rng)

    def _loss(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        prediction = self.model.apply(params, x.astype(self.cfg.dtype)).astype(jnp.float32)
        return jnp.mean((prediction - y) ** 2)

    def train_step(self, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        rng, batch_key = jax.random.split(state.rng)
        index = jax.random.randint(batch_key, (self.cfg.batch_size,), 0, self.train_x.shape[0])
        loss, grads = jax.value_and_grad(self._loss)(state.params, self.train_x[index], self.train_y[index])
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, rng=rng)
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    def eval_step(self, state: TrainState) -> dict[str, jax.Array]:
        return {"val_loss": self._loss(state.params, self.val_x, self.val_y)}
