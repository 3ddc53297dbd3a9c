"""LogThrottleCallback: train metrics leave the device only at the logging interval, then go to the sinks.

The callback opens a channel of the Trainer's `MetricTotals` (`emergence.metrics.totals`) in
`setup`: from then on every train call folds its metrics into that channel's running
totals inside the compiled call, and the logger does nothing per call. A tag is *due* at
the first call boundary at or past each multiple of its step interval (`every_n_steps`, or
its `per_tag` entry; one `Every` per distinct interval), every `every_n_seconds`, and at
`max_steps` (when there is one): the callback's `next_due` is the nearest of those, so its
hook runs only then. Then the due tags' totals are taken (and started afresh), come to the
host in one `jax.device_get` and are written, at `trainer.step`, to every sink, which are
then flushed: what was logged survives the process being killed. Eval metrics are written
at each `on_validation_end`.

Continuity across resumes: the open windows (the totals of each tag since its last row)
travel in every checkpoint, and on start each sink drops what it holds after the starting
step, so a run killed and resumed writes exactly the rows, with exactly the values, of a
run that was never interrupted (same `steps_per_call`, step intervals only). The Trainer
saves only after all of a call's hooks ran, so a checkpoint at a logging step always holds
that step's row as written, whatever the callback order. What was written last is
published in `summary()` (`metrics`, `metrics_step`).

With `background=True` (the Kaggle preset's choice) each row's fetch, writes and flush run
on one writer thread (`emergence.metrics.row_writer`), in order; only the take (one small
jitted update) stays on the loop. Every row is on disk before `on_fit_end` returns, and
before a checkpoint's copy of the open windows is made.

A sink that fails with an `OSError` (a full disk) is reported, and training goes on; so
are metrics that are NaN or infinite (in a line without the step, so that repeats are
identical): the project's `RATE_LIMIT` filter passes 10, then one a minute, and the
callback's `teardown` logs how many were held back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from emergence.callbacks.base import Callback, Metrics
from emergence.log import RATE_LIMIT, get_logger
from emergence.metrics import ConsoleSink, CSVSink, Sink, SinkStart, TensorBoardSink
from emergence.metrics.row_writer import RowWriter
from emergence.metrics.totals import STATS, MetricTotals, Stats, Taken
from emergence.parallel.process_zero import writes_outputs
from emergence.schedule import Every, Pace, check_interval

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.metrics")


class LogThrottleCallback(Callback):
    """Accumulates train metrics on the device and writes them to sinks at an interval.

    Args:
        every_n_steps: step interval for every train metric not in `per_tag` (None: none).
        every_n_seconds: also log every due tag this often (wall clock).
        per_tag: step intervals for single tags, e.g. `{"reward": 100, "queue": 250}`.
        sinks: where values go; default `[CSVSink(), TensorBoardSink(), ConsoleSink()]`
            (`metrics.csv` and `tensorboard/` in the run dir, and the console).
        clock: monotonic seconds (inject a fake one in tests).
        stats: what to log of each train metric's window: `mean` (weighted by steps,
            under the tag's own name), `last`, `max` (as `<tag>/last`, `<tag>/max`).
        background: fetch and write each row on a writer thread instead of the loop's.
        max_rows_per_second: on a loop fast enough to reach `every_n_steps` more often than this,
            a row due by steps waits (its window stays open, so the next row's mean covers both)
            until 1 / max_rows_per_second seconds passed since the last row: a throttle by time.
            Rows stay at step multiples; the clock is read only when a row is due by steps. Rows
            then depend on speed, so a resumed run's rows match a straight run's only without it.
        sparse: tags some calls have no value for, sent as NaN (an age at death when nobody
            died): their NaNs are left out and a window with no value writes no cell. Any
            other tag's NaN is written as `nan`.

    The last values written (tag → float) and their step are published in `summary()` as
    `metrics` and `metrics_step`: a progress display or an export reads them through
    `trainer.summary()` instead of fetching again.
    """

    def __init__(
        self,
        every_n_steps: int | None = 100,
        every_n_seconds: float | None = None,
        per_tag: dict[str, int] | None = None,
        sinks: Sequence[Sink] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        stats: Sequence[str] = ("mean",),
        background: bool = False,
        sparse: Sequence[str] = (),
        max_rows_per_second: float | None = None,
    ) -> None:
        per_tag = dict(per_tag or {})
        _check(every_n_steps, every_n_seconds, per_tag, stats)
        check_interval("LogThrottleCallback: max_rows_per_second", max_rows_per_second, integer=False)
        self.max_rows_per_second = max_rows_per_second
        self._last_row_at = -math.inf
        self.every_n_steps = every_n_steps
        self.every_n_seconds = every_n_seconds
        self.per_tag = per_tag
        self.sinks: list[Sink] = list(sinks) if sinks is not None else [CSVSink(), TensorBoardSink(), ConsoleSink()]
        self.clock = clock
        self.stats = tuple(stats)
        self.sparse = tuple(sparse)
        self._totals: MetricTotals | None = None  # the Trainer's, from setup
        self._channel = 0
        self._restored: dict[str, Any] = {}  # windows from a checkpoint, reopened at on_fit_start
        self._tags_checked = False
        self.background = background
        self._rows = RowWriter(background)
        self._clock_schedule = Every(None, every_n_seconds, clock, owner="LogThrottleCallback")
        self._pace = Pace()  # the clock is read every LOOK_SECONDS or so of steps, not at every call
        self._clock_look = 0
        intervals = {every_n_steps, *per_tag.values()} - {None}
        self._by_steps = {n: Every(n, owner="LogThrottleCallback") for n in sorted(intervals)}
        self._next_due: float = 0
        self._active: list[Sink] | None = None
        self.logged: dict[str, float] = {}
        self.logged_step: int | None = None

    def state_dict(self) -> dict[str, Any]:
        if self._totals is None:
            return {"windows": self._restored}
        self._rows.wait()  # the rows taken so far are on disk before the checkpoint says they were written
        try:
            windows = self._totals.snapshot(self._channel)
        except Exception as err:  # never let the logger break a checkpoint (e.g. after a device error)
            log.warning("metrics: could not save the open logging windows (%s); they restart after a resume", err)
            windows = {}
        return {"windows": windows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restored = dict(state.get("windows", {}))

    def summary(self) -> dict[str, Any]:
        return {"metrics": dict(self.logged), "metrics_step": self.logged_step} if self.logged_step is not None else {}

    def setup(self, trainer: "Trainer") -> None:
        self._totals = trainer.metric_totals
        self._channel = self._totals.open_channel()

    def on_fit_start(self, trainer: "Trainer") -> None:
        self._totals.restore(self._channel, self._restored)
        self._restored = {}
        self._tags_checked = False
        self.logged, self.logged_step = {}, None
        self._last_row_at = -math.inf
        self._clock_schedule.done(trainer.step)
        self._clock_look = trainer.step
        for schedule in self._by_steps.values():
            schedule.done(trainer.step)
        self._next_due = self._first_due(trainer)
        run = SinkStart(trainer.run_dir, trainer.step, _history_dir(trainer))
        writers = self.sinks if writes_outputs() else []  # under jax.distributed, process 0 writes
        self._active = [sink for sink in writers if self._call(sink, "start", run)]

    def next_due(self, trainer: "Trainer") -> float:
        if not self._tags_checked:
            return trainer.step  # the first call: its metrics' names are checked against per_tag
        look = self._clock_look if self.every_n_seconds is not None else math.inf
        return min(self._next_due, look)

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if not self._tags_checked:
            self._tags_checked = True
            _check_tags_exist(self.per_tag, metrics)
        by_time = False
        if self.every_n_seconds is not None and trainer.step >= self._clock_look:
            by_time = self._clock_schedule.due(trainer.step)
            self._clock_look = self._pace.next_look(trainer.step, self.clock())
        if trainer.step >= self._next_due or by_time:
            self._log_due(trainer)

    def on_validation_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        step, evaluated = trainer.step, dict(metrics)

        def row() -> None:
            fetched = jax.device_get(evaluated)
            self._write(step, {tag: float(np.mean(value)) for tag, value in fetched.items()})

        self._rows.submit(row)

    def on_fit_end(self, trainer: "Trainer", reason: str) -> None:
        self._rows.wait()
        self._sinks("flush")

    def teardown(self, trainer: "Trainer") -> None:
        self._rows.close()
        self._sinks("close")
        self._active = None
        RATE_LIMIT.report_suppressed()

    def _log_due(self, trainer: "Trainer") -> None:
        step = trainer.step
        by_time = self._clock_schedule.due(step)
        every = by_time or _at_end(trainer)
        due_intervals = {n for n, schedule in self._by_steps.items() if every or schedule.due_by_steps(step)}
        waits = not every and self._too_soon()  # the windows stay open: the next row's means cover this interval too
        for n in due_intervals:
            self._by_steps[n].done(step)
        if by_time:
            self._clock_schedule.done(step)
        self._next_due = self._first_due(trainer)
        if waits:
            return
        due = [tag for tag in self._totals.all_tags if every or self._interval(tag) in due_intervals]
        taken = self._totals.take(self._channel, due)
        self._rows.submit(lambda: self._row(step, taken))
        if self.max_rows_per_second is not None:
            self._last_row_at = self.clock()

    def _row(self, step: int, taken: Taken) -> None:
        """Fetch the taken windows and write those with a value at `step` (a row writer's job)."""
        stats = taken.stats(self._is_sparse)
        if stats:
            self._write(step, self._values(stats))

    def _interval(self, tag: str) -> int | None:
        return self.per_tag.get(tag, self.every_n_steps)

    def _is_sparse(self, tag: str) -> bool:
        """`tag` is a sparse tag, or a child of one (a sweep's `tag/run_3`): its NaN means no value."""
        return any(tag == name or tag.startswith(name + "/") for name in self.sparse)

    def _too_soon(self) -> bool:
        """A row now would come sooner after the last than `max_rows_per_second` allows (one clock read)."""
        return self.max_rows_per_second is not None and self.clock() - self._last_row_at < 1 / self.max_rows_per_second

    def _first_due(self, trainer: "Trainer") -> float:
        """The first step at which some tag is due by steps, or the end: one comparison per call until then."""
        ends = [schedule.next_step for schedule in self._by_steps.values()]
        return min([*ends, trainer.max_steps if trainer.max_steps is not None else float("inf")])

    def _values(self, taken: Mapping[str, Stats]) -> dict[str, float]:
        return {
            tag if stat == "mean" else f"{tag}/{stat}": stats.get(stat)
            for tag, stats in taken.items()
            for stat in self.stats
        }

    def _write(self, step: int, values: dict[str, float]) -> None:
        bad = sorted(tag for tag, value in values.items() if not math.isfinite(value))
        if bad:
            log.warning("metrics: %s not finite (NaN or infinite)", ", ".join(bad))
        self.logged = {**self.logged, **values}  # rebound, not updated: summary() may read it from the loop thread
        self.logged_step = step
        self._sinks("write", step, values)
        self._sinks("flush")

    def _sinks(self, action: str, *args: Any) -> None:
        """Call `action` on every sink that started (none before `on_fit_start`)."""
        for sink in self._active or ():
            self._call(sink, action, *args)

    @staticmethod
    def _call(sink: Sink, action: str, *args: Any) -> bool:
        """`sink.action(*args)`; an OSError (a full disk) is reported, not raised: False."""
        try:
            getattr(sink, action)(*args)
        except OSError as err:
            log.warning("metrics: %s could not %s (%s); training goes on", type(sink).__name__, action, err)
            return False
        return True


def _at_end(trainer: "Trainer") -> bool:
    """The last call before `max_steps` (never, with `max_steps=None`)."""
    return trainer.max_steps is not None and trainer.step >= trainer.max_steps


def _history_dir(trainer: "Trainer") -> Path | None:
    """The run dir of the checkpoint resumed from, when it is not this run's."""
    ref = trainer.resumed_from
    if ref is None:
        return None
    previous = Path(ref.path).parent.parent
    return previous if previous.resolve() != Path(trainer.run_dir).resolve() else None


def _check_tags_exist(per_tag: dict[str, int], metrics: Metrics) -> None:
    """A one-line error for a `per_tag` name that is not among the first call's metrics."""
    unknown = sorted(set(per_tag) - set(metrics))
    if unknown:
        raise ValueError(
            f"per_tag names {unknown}, which the task's train_step does not return; its metrics are {sorted(metrics)}"
        )


def _check(
    every_n_steps: int | None, every_n_seconds: float | None, per_tag: dict[str, int], stats: Sequence[str]
) -> None:
    check_interval("LogThrottleCallback: every_n_steps", every_n_steps, integer=True)
    check_interval("LogThrottleCallback: every_n_seconds", every_n_seconds, integer=False)
    for tag, interval in per_tag.items():
        check_interval(f"LogThrottleCallback: per_tag[{tag!r}]", interval, integer=True)
    if every_n_steps is None and every_n_seconds is None and not per_tag:
        raise ValueError(
            "LogThrottleCallback logs nothing before max_steps: give every_n_steps, every_n_seconds or per_tag"
        )
    unknown = [s for s in stats if s not in STATS]
    if unknown or not stats:
        raise ValueError(f"stats must be a non-empty subset of {STATS}, got {tuple(stats)!r}")
