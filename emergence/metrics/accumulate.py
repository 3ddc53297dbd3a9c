"""MetricAccumulator: running mean / last / max per tag, kept on the device until someone asks.

Per call the accumulator only remembers the call's metric dict (one list append: no
device work, no transfer, not even a look at the tags). Every `CHUNK` calls, and when
values are taken, it spreads them into each tag's window and
folds what it holds into a running total `(sum, last, max)` with one small jitted
reduction per tag, still on the device. `take()` is the only transfer: one
`jax.device_get` for all the tags asked for. Chunks are folded in power-of-two sizes,
so a handful of shapes is ever compiled whatever the logging schedule.

The mean is weighted by the steps each call covered (a fused call's metrics are
already its steps' mean); `last` and `max` are over the calls' values. Metrics that are
not scalars are averaged to one number first.

For a *sparse* tag (named when the accumulator is made: a metric that some calls have no
value for, such as the age at death of a step in which nobody died) a NaN value means "no
value at this call": it is left out of the mean, last and max, and a window with no value
is absent from what `take` returns, never averaged as 0. For every other tag a NaN is a
NaN and shows as one (a diverged loss must stay visible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

CHUNK = 64
STATS = ("mean", "last", "max")


@dataclass(frozen=True)
class Stats:
    """One tag's window on the host: weighted mean, last and max of the calls' values (NaNs left out), steps covered."""

    mean: float
    last: float
    max: float
    count: int

    def get(self, stat: str) -> float:
        """The value of `stat` (`mean`, `last` or `max`)."""
        return getattr(self, stat)


@partial(jax.jit, static_argnames="sparse")
def _fold(
    total: tuple[jax.Array, ...], values: tuple[jax.Array, ...], weights: jax.Array, sparse: bool = False
) -> tuple[jax.Array, ...]:
    """Add calls' values (weighted by their steps) to a running (sum, last, max, steps with a value).

    `sparse`: NaN values are skipped (no value at that call); else they count, and propagate.
    """
    means = jnp.stack([jnp.mean(jnp.asarray(v, jnp.float32)) for v in values])
    running_sum, running_last, running_max, running_valid = total
    valid = ~jnp.isnan(means) if sparse else jnp.ones(means.shape, bool)
    weights = jnp.where(valid, weights, 0.0)
    last = jnp.where(valid.any(), means[means.shape[0] - 1 - jnp.argmax(valid[::-1])], running_last)
    peak = jnp.maximum(running_max, jnp.max(jnp.where(valid, means, -jnp.inf)))
    return running_sum + jnp.sum(jnp.where(valid, means, 0.0) * weights), last, peak, running_valid + weights.sum()


@dataclass
class _Window:
    """What one tag accumulated since its last `take`: calls not yet folded, and the folded total."""

    values: list[jax.Array] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)
    total: tuple[jax.Array, ...] | None = None
    count: int = 0
    sparse: bool = False


class MetricAccumulator:
    """Accumulates device metrics per tag between fetches; see the module docstring."""

    def __init__(self, sparse: Sequence[str] = ()) -> None:
        """`sparse`: tags (and their `tag/...` children, e.g. a sweep's `tag/run_3`) whose NaN means no value."""
        self.sparse = tuple(sparse)
        self._windows: dict[str, _Window] = {}
        self._calls: list[tuple[dict[str, Any], int]] = []
        self._empty: tuple[jax.Array, ...] | None = None

    @property
    def tags(self) -> list[str]:
        """Tags seen so far, in order of first appearance."""
        self._spread()
        return list(self._windows)

    def pending(self, tag: str) -> int:
        """Steps accumulated for `tag` since it was last taken."""
        self._spread()
        window = self._windows.get(tag)
        return window.count if window else 0

    def add(self, metrics: dict[str, Any], steps: int) -> None:
        """Remember one call's device metrics, which covered `steps` train steps (one list append)."""
        self._calls.append((metrics, steps))
        if len(self._calls) == CHUNK:
            self._spread()

    def _spread(self) -> None:
        """Hand the calls remembered since the last spread to each tag's window; fold full windows.

        Calls that share one tag set (the usual case) are handed over a tag at a time; calls whose
        tags differ one by one."""
        calls, self._calls = self._calls, []
        if not calls:
            return
        tags = calls[0][0].keys()
        if any(metrics.keys() != tags for metrics, _ in calls):
            for metrics, steps in calls:
                for tag, value in metrics.items():
                    self._hand_over(tag, [value], [steps])
            return
        weights = [steps for _, steps in calls]
        for tag in tags:
            self._hand_over(tag, [metrics[tag] for metrics, _ in calls], weights)

    def _hand_over(self, tag: str, values: list[Any], weights: list[int]) -> None:
        """Add calls' `values` of `tag` (covering `weights` steps each) to its window; fold it in full chunks."""
        window = self._windows.get(tag)
        if window is None:
            window = self._windows[tag] = _Window(sparse=self._is_sparse(tag))
        window.values.extend(values)
        window.weights.extend(weights)
        window.count += sum(weights)
        while len(window.values) >= CHUNK:
            self._fold(window)

    def take(self, tags: list[str]) -> dict[str, Stats]:
        """The windows of `tags` that hold anything, on the host (one transfer), and start them afresh."""
        self._spread()
        windows = {tag: self._windows[tag] for tag in tags if self.pending(tag)}
        if not windows:
            return {}
        host = jax.device_get({tag: self._folded(window) for tag, window in windows.items()})
        stats = {}
        for tag, window in windows.items():
            self._windows[tag] = _Window(sparse=window.sparse)
            total, last, peak, valid = (float(x) for x in host[tag])
            if valid > 0:  # a sparse tag whose every value was NaN has no value this window
                stats[tag] = Stats(mean=total / valid, last=last, max=peak, count=window.count)
        return stats

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every open window as JSON-able numbers (one transfer), to persist; windows stay open."""
        self._spread()
        totals = {tag: self._folded(window) for tag, window in self._windows.items() if window.count}
        host = jax.device_get(totals)
        return {
            tag: {
                "sum": float(s),
                "last": float(last),
                "max": float(peak),
                "valid": float(valid),
                "count": self._windows[tag].count,
            }
            for tag, (s, last, peak, valid) in host.items()
        }

    def restore(self, snapshot: dict[str, dict[str, float]]) -> None:
        """Reopen windows from `snapshot()` (bitwise: float32 totals survive the round trip through float)."""
        self._windows, self._calls = {}, []
        for tag, saved in snapshot.items():
            saved = {"valid": saved["count"], **saved}  # snapshots before NaN skipping: every step had a value
            total = tuple(jnp.asarray(np.float32(saved[k])) for k in ("sum", "last", "max", "valid"))
            self._windows[tag] = _Window(total=total, count=int(saved["count"]), sparse=self._is_sparse(tag))

    def _is_sparse(self, tag: str) -> bool:
        return any(tag == name or tag.startswith(name + "/") for name in self.sparse)

    def _folded(self, window: _Window) -> tuple[jax.Array, ...]:
        """Fold every held value into the window's total (power-of-two chunks); the total."""
        while window.values:
            self._fold(window, 1 << (len(window.values).bit_length() - 1))
        return window.total

    def _fold(self, window: _Window, size: int = CHUNK) -> None:
        if self._empty is None:
            self._empty = (jnp.float32(0.0), jnp.float32(jnp.nan), jnp.float32(-jnp.inf), jnp.float32(0.0))
        values, window.values = window.values[:size], window.values[size:]
        weights, window.weights = window.weights[:size], window.weights[size:]
        total = window.total if window.total is not None else self._empty
        window.total = _fold(total, tuple(values), np.asarray(weights, np.float32), sparse=window.sparse)
