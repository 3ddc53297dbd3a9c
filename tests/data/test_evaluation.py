"""evaluate_over: metrics over the whole finite val_data, each batch weighted by its size."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emergence.data import DataError
from emergence.data.evaluation import evaluate_over


def eval_step(state, batch):
    return {"error": jnp.mean(jnp.abs(batch["x"] - state["target"])), "count": jnp.float32(batch["x"].shape[0])}


def test_metrics_are_averaged_per_example_a_short_last_batch_counting_less():
    values = np.arange(10, dtype=np.float32)
    val_data = [{"x": values[0:4]}, {"x": values[4:8]}, {"x": values[8:10]}]  # 4 + 4 + 2 examples
    metrics = evaluate_over(jax.jit(eval_step), {"target": jnp.float32(0.0)}, val_data)
    chex.assert_trees_all_close(metrics["error"], jnp.float32(values.mean()))  # 4.5, not the mean of batch means
    chex.assert_trees_all_close(metrics["count"], jnp.float32((4 * 4 + 4 * 4 + 2 * 2) / 10))


def test_a_batch_whose_leaves_disagree_on_the_batch_axis_is_refused():
    with pytest.raises(DataError, match="every leaf of a batch needs the same leading batch axis"):
        evaluate_over(lambda s, b: {}, None, [{"x": np.zeros(3), "y": np.zeros(2)}])
