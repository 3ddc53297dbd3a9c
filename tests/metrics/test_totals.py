"""MetricTotals: the running totals a train call folds its metrics into, read per channel by the loggers.

For a sparse tag a NaN means "no value at this call": left out of the window, and an empty
window is absent. Any other tag's NaN stays visible. Host values (`trainer.log`) follow the
same rule, folded over the steps they held.
"""

import json
import math

import jax
import jax.numpy as jnp
import pytest

from emergence.metrics import MetricTotals
from emergence.metrics.totals import fold_metrics

NAN = float("nan")


class Run:
    """Totals with one or more channels, fed calls as a train call would (the fold jitted)."""

    def __init__(self, tags, channels=1, restored=None):
        self.step = 0
        self.totals = MetricTotals(lambda: self.step)
        for _ in range(channels):
            self.totals.open_channel()
        for channel, windows in (restored or {}).items():
            self.totals.restore(channel, windows)
        self.totals.start(tags)
        self._fold = jax.jit(fold_metrics(self.totals.tags), static_argnums=2)

    def call(self, steps=1, **values):
        self.totals.array = self._fold(self.totals.array, {t: jnp.float32(v) for t, v in values.items()}, steps)
        self.step += steps

    def take(self, tags, channel=0, sparse=()):
        return self.totals.take(channel, tags).stats(lambda tag: tag in sparse)


def test_nan_values_of_a_sparse_tag_are_left_out_of_mean_last_and_max():
    run = Run(["age"])
    for value in (10.0, NAN, 30.0, NAN):
        run.call(age=value)
    stats = run.take(["age"], sparse=("age",))["age"]
    assert (stats.mean, stats.last, stats.max, stats.count) == (20.0, 30.0, 30.0, 4)


def test_a_sparse_window_with_no_value_is_absent_not_zero():
    run = Run(["age", "deaths"])
    for _ in range(3):
        run.call(steps=2, age=NAN, deaths=0.0)
    taken = run.take(["age", "deaths"], sparse=("age",))
    assert "age" not in taken and taken["deaths"].mean == 0.0 and taken["deaths"].count == 6


def test_a_nan_of_a_tag_not_declared_sparse_stays_visible():
    run = Run(["loss", "age"])
    run.call(loss=1.0, age=NAN)
    run.call(loss=NAN, age=5.0)
    taken = run.take(["loss", "age"], sparse=("age",))
    assert math.isnan(taken["loss"].mean) and math.isnan(taken["loss"].last) and math.isnan(taken["loss"].max)
    assert taken["age"].mean == 5.0


def test_the_mean_is_weighted_by_steps_and_a_take_starts_only_the_taken_tags_afresh():
    run = Run(["a", "b"])
    run.call(steps=3, a=1.0, b=1.0)
    run.call(steps=1, a=5.0, b=5.0)
    assert run.take(["a"])["a"].mean == 2.0
    run.call(steps=1, a=7.0, b=7.0)
    taken = run.take(["a", "b"])
    assert (taken["a"].mean, taken["a"].count) == (7.0, 1)
    assert (taken["b"].mean, taken["b"].max, taken["b"].count) == (3.0, 7.0, 5)


def test_channels_are_independent_windows_of_the_same_calls():
    run = Run(["loss"], channels=2)
    run.call(loss=1.0)
    assert run.take(["loss"], channel=0)["loss"].mean == 1.0
    run.call(loss=3.0)
    assert run.take(["loss"], channel=0)["loss"].mean == 3.0
    assert run.take(["loss"], channel=1)["loss"].mean == 2.0


def test_snapshots_restore_bitwise_and_old_snapshots_still_restore():
    run = Run(["x"])
    run.call(x=4.1)
    run.call(x=NAN)
    saved = run.totals.snapshot(0)
    again = Run(["x"], restored={0: saved})
    assert json.dumps(again.totals.snapshot(0)) == json.dumps(saved)
    assert again.take(["x"], sparse=("x",)) == run.take(["x"], sparse=("x",))
    old = {"x": {"sum": 6.0, "last": 2.0, "max": 4.0, "count": 2}}  # written before NaNs were skipped
    assert Run(["x"], restored={0: old}).take(["x"])["x"].mean == pytest.approx(3.0)
    older_sparse = {"x": {"sum": 4.0, "last": 4.0, "max": 4.0, "valid": 1.0, "count": 2}}
    assert Run(["x"], restored={0: older_sparse}).take(["x"], sparse=("x",))["x"].mean == 4.0


def test_host_values_hold_from_the_next_call_until_logged_again():
    run = Run(["loss"])
    run.totals.log({"events": 1.0})
    run.call(steps=2, loss=0.0)
    run.call(steps=2, loss=0.0)
    run.totals.log({"events": 4.0})
    run.call(steps=4, loss=0.0)
    stats = run.take(["events"])["events"]
    assert (stats.mean, stats.last, stats.max, stats.count) == (2.5, 4.0, 4.0, 8)
    assert run.totals.snapshot(0) == {"loss": run.totals.snapshot(0)["loss"]}  # taken: the window starts afresh
    run.call(loss=0.0)
    assert run.totals.snapshot(0)["events"]["sum"] == 4.0


def test_a_channel_cannot_open_after_the_first_call():
    run = Run(["loss"])
    with pytest.raises(RuntimeError, match="open it in setup"):
        run.totals.open_channel()
