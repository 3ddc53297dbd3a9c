"""TimeBudgetCallback and KaggleTimeoutCallback: stop with a final checkpoint before the wall.

At every call boundary the callback compares the time left with what stopping needs:

    remaining < margin + next call + save  →  trainer.stops.propose("time_budget")

Both estimates are measured as the run goes: the call from the device's completions that the
Trainer's call tracker saw (`trainer.calls`, read through a `StepRate` on this callback's
clock), never forcing a copy to the host; the save from the checkpoints actually written
(`trainer.last_save_seconds`, from the snapshot to the durable file: a save syncs, so it
includes draining the calls still queued, which is what the final save will cost too).
Durations run on `time.monotonic` (the deadline, an epoch time, is placed on it once at
`setup`), so a step of the wall clock moves nothing; the first call's compile time is not a
call (it is over before the first dispatch returns). Until the first save: 0.5 s + the
state's size at 100 MB/s + the device work still queued. To keep a stop effective it bounds
how far the host runs ahead of the device to about a quarter of the margin. It looks at a
call boundary only as often as it must: `next_due()` is half the steps the measured rate
says fit before the stop is due (every call until a call was timed, and once close), so a
fast loop pays one comparison per call. The stop is requested as `time_budget`
(`trainer.request_stop`): on one process it takes effect at once; under `jax.distributed`
process 0's request stops every process at the same step (see `emergence.parallel.stops`).
The Trainer then writes the final checkpoint once (`saves_on_stop`). The seconds left are
published in `summary()` as `time_left` (a progress display reads it).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax

from emergence.callbacks.base import EVERY_CALL, Callback, Metrics
from emergence.calls import StepRate
from emergence.log import get_logger
from emergence.platforms.kaggle import kaggle_session_limit
from emergence.platforms.process import jax_accelerator, process_start_time
from emergence.platforms.slurm import slurm_job_end_time
from emergence.stop import StopReason

if TYPE_CHECKING:
    from emergence.checkpoint import CheckpointRef
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

REASON = StopReason("time_budget")
GUESS_SAVE_SECONDS = 0.5
GUESS_WRITE_BYTES_PER_SECOND = 100e6
BACKLOG_SHARE_OF_MARGIN = 0.25


class TimeBudgetCallback(Callback):
    """Stops the run in time to write its final checkpoint before a wall-clock deadline.

    Args:
        max_duration: seconds the run may last from `start`.
        deadline: an absolute end, in epoch seconds.
        start: epoch seconds `max_duration` counts from (default: when `fit()` starts).
        margin: seconds kept free after the final checkpoint (summary, zipping, upload).
        clock: epoch-seconds clock, read at `setup` to place the deadline (inject a fake one in tests).
        monotonic: the clock durations are measured on (default `time.monotonic`, so a step of the
            wall clock moves nothing; `clock` itself when a fake `clock` is injected).

    The earliest of `start + max_duration`, `deadline` and SLURM's `SLURM_JOB_END_TIME`
    (when set) applies. The budget is per process: nothing of it is saved in checkpoints.
    """

    can_stop = True
    saves_on_stop = frozenset({"time_budget"})

    def __init__(
        self,
        max_duration: float | None = None,
        *,
        deadline: float | None = None,
        start: float | None = None,
        margin: float = 60.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.slurm_end = slurm_job_end_time()
        _check(max_duration, deadline, start, margin, self.slurm_end)
        self.max_duration = max_duration
        self.fixed_deadline = deadline
        self.start = start
        self.margin = float(margin)
        self.clock = clock
        self.monotonic = monotonic if monotonic is not None else (time.monotonic if clock is time.time else clock)
        self.deadline = 0.0
        self._deadline_at = 0.0
        self._first_call_at: float | None = None
        self._rate = StepRate(self.monotonic)
        self._saves: deque[float] = deque(maxlen=3)
        self._state_bytes = 0
        self._steps_per_call = 1
        self._queued = 0.0
        self._fit_began = 0.0

    @property
    def remaining(self) -> float:
        """Seconds until the deadline (on the monotonic clock, from where `setup` placed it)."""
        return self._deadline_at - self.monotonic()

    @property
    def call_seconds(self) -> float:
        """Estimated device seconds of one call; before any call finished, the time since the first was dispatched.

        The first call's compile time is not a call: it is over before the first dispatch
        returns, so it counts in neither estimate.
        """
        per_step = self._rate.seconds_per_step
        if per_step is not None:
            return per_step * self._steps_per_call
        return 0.0 if self._first_call_at is None else self.monotonic() - self._first_call_at

    @property
    def save_seconds(self) -> float:
        """Estimated seconds to a durable checkpoint: the longest of the last three saves, or a guess."""
        if self._saves:
            return max(self._saves)
        return GUESS_SAVE_SECONDS + self._state_bytes / GUESS_WRITE_BYTES_PER_SECOND + self._queued

    def setup(self, trainer: "Trainer") -> None:
        self._fit_began = self.clock()
        self.deadline = self._resolve_deadline()
        self._deadline_at = self.monotonic() + (self.deadline - self._fit_began)
        self._first_call_at = None
        self._rate = StepRate(self.monotonic)
        trainer.calls.watch()

    def on_fit_start(self, trainer: "Trainer") -> None:
        self._steps_per_call = trainer.steps_per_call
        self._state_bytes = sum(getattr(leaf, "nbytes", 0) for leaf in jax.tree.leaves(trainer.state))
        remaining = self.remaining
        if remaining < self.margin + self.save_seconds:
            log.warning("time budget: only %.0f s left before the deadline: not training", remaining)
            trainer.request_stop(REASON)

    def summary(self) -> dict[str, float]:
        return {"time_left": self.remaining} if self.deadline else {}

    def next_due(self, trainer: "Trainer") -> float:
        per_step = self._rate.seconds_per_step
        if per_step is None or per_step <= 0:
            return EVERY_CALL
        spare = self.remaining - (self.margin + self.call_seconds + self.save_seconds)
        backlog = BACKLOG_SHARE_OF_MARGIN * self.margin
        steps = int(min(spare / 2, backlog) / per_step)
        return trainer.step + steps if steps > 2 * trainer.steps_per_call else EVERY_CALL

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if self._first_call_at is None:
            self._first_call_at = self.monotonic()
        calls = trainer.calls
        self._rate.observe(calls)
        if calls.wait(self._backlog_limit()):
            self._rate.observe(calls)
        self._queued = self._rate.pending_seconds(trainer.step)
        remaining = self.remaining
        if remaining < self.margin + self.call_seconds + self.save_seconds:
            log.info(
                "time budget: %.1f s left < margin %.1f + call %.2f + save %.2f: stopping at step %d",
                remaining,
                self.margin,
                self.call_seconds,
                self.save_seconds,
                trainer.step,
            )
            trainer.request_stop(REASON)

    def on_save_checkpoint(self, trainer: "Trainer", ref: "CheckpointRef") -> None:
        self._saves.append(trainer.last_save_seconds)

    def on_fit_end(self, trainer: "Trainer", reason: StopReason) -> None:
        if reason.kind != REASON.kind:
            return
        log.info(
            "time budget: stopped at step %d with %.1f s to spare before the deadline "
            "(margin %.0f s, call %.2f s, save %.2f s)",
            trainer.step,
            self.remaining,
            self.margin,
            self.call_seconds,
            self.save_seconds,
        )

    def _backlog_limit(self) -> int:
        """Calls allowed in flight: at least 2 (keeps the device busy), at most a quarter margin of work."""
        if self._rate.seconds_per_step is None:
            return 2
        return max(2, int(BACKLOG_SHARE_OF_MARGIN * self.margin / max(self.call_seconds, 1e-9)))

    def _resolve_deadline(self) -> float:
        ends = [t for t in (self.fixed_deadline, self.slurm_end) if t is not None]
        if self.max_duration is not None:
            ends.append((self.start if self.start is not None else self._fit_began) + self.max_duration)
        return min(ends)


class KaggleTimeoutCallback(TimeBudgetCallback):
    """Kaggle's session wall: 12 hours on CPU/GPU, 9 hours on TPU (detected), from the process start.

    Args:
        limit: session seconds (default: by accelerator, from `emergence.platforms`).
        start: epoch seconds the session began (default: this process's start time, read
            from `/proc`; pass the real session start if you restarted the kernel).
        margin: seconds kept free after the final checkpoint for the summary, artifact
            export and zipping `/kaggle/working`.
    """

    def __init__(
        self,
        limit: float | None = None,
        *,
        start: float | None = None,
        margin: float = 600.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        if limit is None:
            limit = kaggle_session_limit(jax_accelerator()[0])
        start = process_start_time() if start is None else start
        super().__init__(max_duration=limit, start=start, margin=margin, clock=clock, monotonic=monotonic)


def _check(
    max_duration: float | None, deadline: float | None, start: float | None, margin: float, slurm_end: float | None
) -> None:
    if max_duration is None and deadline is None and slurm_end is None:
        raise ValueError(
            "TimeBudgetCallback needs max_duration (seconds) or deadline (epoch seconds); "
            "neither was given and SLURM_JOB_END_TIME is not set"
        )
    if max_duration is not None and not max_duration > 0:
        raise ValueError(f"max_duration must be positive seconds, got {max_duration!r}")
    if start is not None and max_duration is None:
        raise ValueError("start only applies with max_duration; pass max_duration or drop start")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0 seconds, got {margin!r}")
