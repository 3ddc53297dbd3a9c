"""MetricTotals: the train metrics' running totals, folded inside the compiled train call.

A logger needs, per tag, the steps-weighted mean, the last value and the max of every call
since its last row. Keeping each call's metric arrays and folding them later costs the
host a few microseconds a call whichever thread does it, which on a tiny step is most of
what logging costs. So the fold is part of the train call itself: the Trainer passes a
`(channels, tags, 6)` float32 array in and gets it back updated, donated both ways, and
the host does nothing per call. A reader (each `LogThrottleCallback`) opens a channel in
`setup`; at a row it `take`s some tags of its channel, which returns their totals and starts
them afresh in one small jitted update (its only device work). `Taken.stats` brings what was
taken to the host (one `jax.device_get`, on whichever thread writes the rows).

The six columns, per channel and tag: the sum of value × steps over the calls with a
value, those calls' steps, the steps of calls whose value was NaN, the last value that was
not NaN, the last value, and the max of the values that were not NaN. So both readings
come out at `Stats` time: a *sparse* tag (a NaN means "no value at this call", such as an
age at death when nobody died) skips its NaNs and has no row when it had no value; any
other tag's NaN shows (a diverged loss must stay visible).

Host values a callback `trainer.log`s join the same totals on the host: a value holds
from the call after it was logged until the next `log`, so it is folded once per `log`
over the steps it held, with the same rule (`fold`, over numpy instead of jax.numpy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

COLUMNS = ("sum", "valid", "nan", "last_valid", "last", "max")
EMPTY = np.array([0.0, 0.0, 0.0, np.nan, np.nan, -np.inf], np.float32)
STATS = ("mean", "last", "max")


@dataclass(frozen=True)
class Stats:
    """One tag's window on the host: weighted mean, last and max of the calls' values, steps covered."""

    mean: float
    last: float
    max: float
    count: int

    def get(self, stat: str) -> float:
        """The value of `stat` (`mean`, `last` or `max`)."""
        return getattr(self, stat)


def fold(xp: Any, totals: Any, values: Any, steps: Any) -> Any:
    """`totals` (`(..., 6)`) with one call's float32 `values` (broadcast over the leading axes) covering `steps`.

    `xp` is `jax.numpy` inside the train call, `numpy` for host values: one rule for both. Every
    column is one elementwise expression of the same broadcast shape, so XLA fuses the whole fold
    into a single kernel after the step (a tiny step pays one kernel launch for it, no more).
    """
    column = xp.arange(len(COLUMNS))
    nan = xp.isnan(values)
    weight = xp.asarray(steps, xp.float32)
    zero = xp.zeros((), xp.float32)
    counted = xp.where(column == 0, values * weight, xp.where(column == 1, weight, zero))  # a value's columns
    summed = totals + xp.where(nan, xp.where(column == 2, weight, zero), counted)
    kept = xp.where(nan, totals, xp.where(column == 3, values, xp.maximum(totals, values)))
    return xp.where(column < 3, summed, xp.where(column == 4, values, kept))


def stats_of(row: np.ndarray, sparse: bool) -> Stats | None:
    """A tag's window from its six columns: None when it covers no step (or, when `sparse`, no value)."""
    total, valid, nans, last_valid, last, peak = (float(x) for x in row)
    count = int(valid + nans)
    if count == 0 or (sparse and valid == 0):
        return None
    if sparse or nans == 0:
        return Stats(mean=total / valid, last=last_valid if sparse else last, max=peak, count=count)
    return Stats(mean=math.nan, last=last, max=math.nan, count=count)


def row_of(saved: Mapping[str, float]) -> np.ndarray:
    """Six columns from a checkpoint's window: this format, or the `{sum, last, max, valid, count}` one before it."""
    if "nan" in saved:
        return np.array([saved[c] for c in COLUMNS], np.float32)
    count = float(saved["count"])
    valid = float(saved.get("valid", count))  # before NaN skipping every step had a value
    last = saved["last"]
    return np.array([saved["sum"], valid, count - valid, last, last, saved["max"]], np.float32)


def saved_of(row: np.ndarray) -> dict[str, float]:
    """A window's six columns as JSON-able numbers (float32 survives the round trip through float exactly)."""
    saved = {c: float(x) for c, x in zip(COLUMNS, row)}
    return {**saved, "count": int(saved["valid"] + saved["nan"])}


@partial(jax.jit, donate_argnums=0)
def _take(totals: jax.Array, channel: jax.Array, fresh: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The channel's rows, and `totals` with the rows marked in `fresh` started afresh."""
    rows = totals[channel]
    return totals.at[channel].set(jnp.where(fresh[:, None], jnp.asarray(EMPTY), rows)), rows


def fold_metrics(tags: tuple[str, ...]) -> Callable[[jax.Array, Mapping[str, Any], int], jax.Array]:
    """The fold a train call runs: `(totals, metrics, steps) -> totals`, `tags` in the array's order."""

    def fold_call(totals: jax.Array, metrics: Mapping[str, Any], steps: int) -> jax.Array:
        row = jnp.arange(len(tags))[:, None]
        values = jnp.zeros((len(tags), 1), jnp.float32)
        for i, tag in enumerate(tags):  # selects, not a stack: the values fuse into the fold's one kernel
            values = jnp.where(row == i, jnp.asarray(metrics[tag], jnp.float32).reshape(()), values)
        return fold(jnp, totals, values, steps)

    return fold_call


@dataclass
class Taken:
    """Rows taken from a channel: device rows (fetched by `stats`, on the writer's thread) and host rows."""

    index: dict[str, int]  # a taken device tag -> its row in `device`
    device: jax.Array | None
    host: dict[str, np.ndarray]

    def stats(self, sparse: Callable[[str], bool]) -> dict[str, Stats]:
        """Each tag's window with a value, on the host (one transfer)."""
        rows = dict(self.host)
        if self.device is not None:
            fetched = np.asarray(jax.device_get(self.device))
            rows.update({tag: fetched[i] for tag, i in self.index.items() if tag not in self.host})
        windows = {tag: stats_of(row, sparse(tag)) for tag, row in rows.items()}
        return {tag: stats for tag, stats in windows.items() if stats is not None}


class MetricTotals:
    """The running totals of one `fit()`'s train metrics, per reader channel; see the module docstring."""

    def __init__(self, step: Callable[[], int] = lambda: 0) -> None:
        """`step`: the Trainer's step now (host values are folded over the steps they held)."""
        self.step = step
        self.channels = 0
        self.tags: tuple[str, ...] | None = None  # the train call's metrics, known at the first call
        self.array: jax.Array | None = None
        self._pending: dict[int, dict[str, np.ndarray]] = {}  # restored windows, placed at `start`
        self._host: dict[str, np.ndarray] = {}  # host value tag -> (channels, 6)
        self._held: dict[str, float] = {}  # host values now in force
        self._since = 0  # the step since which `_held` is in force

    @property
    def folding(self) -> bool:
        """Some reader opened a channel: the train call folds its metrics."""
        return self.channels > 0

    def open_channel(self) -> int:
        """A channel for one reader (from `setup`, before the first call)."""
        if self.array is not None:
            raise RuntimeError("MetricTotals.open_channel after the first train call: open it in setup")
        self.channels += 1
        return self.channels - 1

    def start(self, tags: Iterable[str], place: Callable[[np.ndarray], jax.Array] = jnp.asarray) -> None:
        """Make the device totals for the train call's metric `tags`, with the windows restored so far."""
        self.tags = tuple(sorted(tags))
        host = np.tile(EMPTY, (self.channels, len(self.tags), 1))
        index = {tag: i for i, tag in enumerate(self.tags)}
        for channel, windows in self._pending.items():
            for tag, row in windows.items():
                if tag in index:
                    host[channel, index[tag]] = row
                else:
                    self._host_rows(tag)[channel] = row
        self._pending = {}
        self.array = place(host)

    def restore(self, channel: int, windows: Mapping[str, Mapping[str, float]]) -> None:
        """Reopen a channel's windows from `snapshot` (before the first call: from `on_fit_start`)."""
        self._pending[channel] = {tag: row_of(saved) for tag, saved in windows.items()}

    def log(self, values: Mapping[str, float]) -> None:
        """Host values in force from the next call on (until logged again): see `Trainer.log`."""
        self._fold_held()
        self._held = {**self._held, **{tag: float(v) for tag, v in values.items()}}

    def take(self, channel: int, tags: Iterable[str]) -> Taken:
        """`tags`' rows of `channel` (device ones not fetched yet), started afresh: what a row writes now."""
        tags = set(tags)
        self._fold_held()
        host = {}
        for tag in tags & self._host.keys():
            host[tag], self._host[tag][channel] = self._host[tag][channel].copy(), EMPTY
        index = {tag: i for i, tag in enumerate(self.tags or ()) if tag in tags}
        device = None
        if index:
            fresh = np.array([tag in index for tag in self.tags])
            self.array, device = _take(self.array, np.int32(channel), fresh)
        return Taken(index, device, host)

    def snapshot(self, channel: int) -> dict[str, dict[str, float]]:
        """Every open window of `channel` as JSON-able numbers, to persist (one transfer); windows stay open."""
        self._fold_held()
        if self.array is None:
            rows = dict(self._pending.get(channel, {}))
        else:
            rows = dict(zip(self.tags, np.asarray(jax.device_get(self.array[channel]))))
        rows.update({tag: host[channel] for tag, host in self._host.items()})
        return {tag: saved_of(row) for tag, row in rows.items() if row[1] + row[2] > 0}

    @property
    def all_tags(self) -> list[str]:
        """The train call's tags and the host values' tags."""
        return [*(self.tags or ()), *(tag for tag in self._host if tag not in (self.tags or ()))]

    def _host_rows(self, tag: str) -> np.ndarray:
        if tag not in self._host:
            self._host[tag] = np.tile(EMPTY, (self.channels, 1))
        return self._host[tag]

    def _fold_held(self) -> None:
        """Fold the host values in force over the steps since `_since` (nothing when no step passed)."""
        step = self.step()
        steps, self._since = step - self._since, step
        if steps <= 0:
            return
        for tag, value in self._held.items():
            self._host[tag] = fold(np, self._host_rows(tag), np.float32(value), steps)
