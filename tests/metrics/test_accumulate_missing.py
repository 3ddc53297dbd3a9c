"""For a sparse tag a NaN means "no value at this call": left out of the window, and an empty window is absent."""

import jax.numpy as jnp
import pytest

from emergence.metrics import MetricAccumulator


def test_nan_values_are_left_out_of_mean_last_and_max():
    acc = MetricAccumulator(sparse=("env/age_at_death", "x"))
    for value in (10.0, float("nan"), 30.0, float("nan")):
        acc.add({"env/age_at_death": jnp.float32(value)}, steps=1)
    stats = acc.take(["env/age_at_death"])["env/age_at_death"]
    assert (stats.mean, stats.last, stats.max, stats.count) == (20.0, 30.0, 30.0, 4)


def test_a_window_with_no_value_is_absent_not_zero():
    acc = MetricAccumulator(sparse=("env/age_at_death", "x"))
    for _ in range(3):
        acc.add({"env/age_at_death": jnp.float32(float("nan")), "env/deaths": jnp.float32(0.0)}, steps=2)
    taken = acc.take(["env/age_at_death", "env/deaths"])
    assert "env/age_at_death" not in taken and taken["env/deaths"].mean == 0.0


def test_snapshots_keep_the_count_of_values_and_old_snapshots_still_restore():
    acc = MetricAccumulator(sparse=("env/age_at_death", "x"))
    acc.add({"x": jnp.float32(4.0)}, steps=1)
    acc.add({"x": jnp.float32(float("nan"))}, steps=1)
    again = MetricAccumulator(sparse=("env/age_at_death", "x"))
    again.restore(acc.snapshot())
    assert again.take(["x"])["x"].mean == 4.0
    old = MetricAccumulator(sparse=("env/age_at_death", "x"))
    old.restore({"x": {"sum": 6.0, "last": 2.0, "max": 4.0, "count": 2}})  # written before NaNs were skipped
    assert old.take(["x"])["x"].mean == pytest.approx(3.0)


def test_a_nan_of_a_tag_not_declared_sparse_stays_visible():
    acc = MetricAccumulator(sparse=("env/age_at_death",))
    acc.add({"loss": jnp.float32(1.0), "env/age_at_death/run_0": jnp.float32(float("nan"))}, steps=1)
    acc.add({"loss": jnp.float32(float("nan")), "env/age_at_death/run_0": jnp.float32(5.0)}, steps=1)
    taken = acc.take(["loss", "env/age_at_death/run_0"])
    assert jnp.isnan(taken["loss"].mean) and jnp.isnan(taken["loss"].last)
    assert taken["env/age_at_death/run_0"].mean == 5.0
