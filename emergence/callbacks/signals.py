"""SignalCheckpointCallback: SIGTERM, SIGINT, SIGUSR1 (and Jupyter's interrupt) end a run with a checkpoint.

The handler only records the signal and asks the Trainer to stop (`trainer.request_stop`
with a `signal` `StopReason`, any process's request counts): no I/O happens inside it.
The Trainer dispatches no call after that; once the call's hooks and the save point are
over it writes `emergency_step_<N>` of the last completed step (this callback's
`saves_on_stop` asks for it), fires `on_fit_end` (the loggers flush) and `teardown` (this
callback restores the previous handlers), and `fit()` returns with `trainer.exit_code`
128 + signum (143 for SIGTERM, 130 for SIGINT, 138 for SIGUSR1): `emergence train` and
a script's `sys.exit(trainer.exit_code)` exit with it; a notebook cell just goes on. More
signals while stopping are counted and ignored, so they cannot tear the save; SIGKILL
remains the way to force a stop.

An emergency save waits only for the call in flight. The handler's request is agreed at
once on one process, so the Trainer's loop sees the stop before it dispatches another call.
What the save must wait for is the device work already queued: JAX lets the host run ~30
calls ahead of the device, which for second-long calls would spend a scheduler's whole
grace period (10 s for `docker stop`, 30 s for SLURM) before the save even starts. So at
each call boundary where more than `QUEUED_SECONDS` of device work may be queued (estimated
from the completions the Trainer's call tracker `trainer.calls` saw, and assumed to until
one is seen), the callback waits (never copying) until at most
`min(max_calls_in_flight, QUEUED_SECONDS // one call)` calls are unfinished: none at all
once a call is longer than `QUEUED_SECONDS`. When calls are short it looks only as often
as needed: `next_due()` is the first step at which `QUEUED_SECONDS` of work could be
queued, so a dispatch-bound loop (a tiny model, one step per call) pays one comparison
per call. In general the save waits for at most one call plus `QUEUED_SECONDS` of queued
work.

A signal is honoured wherever it lands once `setup` has installed the handler: while the
first call compiles (the call then runs, and its step is saved), during an evaluation or
a periodic save, synchronous or on the writer thread (that save completes, then the
emergency one is written), or during `on_fit_start` work and the restore before it (no
step trained: the "nothing to save" line).

Under `jax.distributed` the request is agreed every few calls (see `emergence.parallel.stops`):
every process reads the same agreed signal stop at the same boundary, so all of them save
and stop at the same step and every one's `exit_code` is that signal's, also on the
processes that received nothing.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from emergence.callbacks.base import EVERY_CALL, Callback, Metrics
from emergence.calls import StepRate
from emergence.log import get_logger
from emergence.stop import StopReason

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}
QUEUED_SECONDS = 0.25


class SignalCheckpointCallback(Callback):
    """Turns a termination signal into a stop, an emergency checkpoint and exit code 128 + signum.

    Args:
        signals: the signals to catch (SLURM's `--signal=USR1@90` arrives as SIGUSR1).
        max_calls_in_flight: at most this many dispatched calls may be unfinished at a
            call boundary once more than `QUEUED_SECONDS` of device work is queued, and
            never more than `QUEUED_SECONDS` of work (so none once a call is longer): an
            emergency save waits for the call in flight plus at most `QUEUED_SECONDS` of
            queued calls. None lets the host run as far ahead as JAX allows.

    Anywhere in the callback list. `caught` is the first signal this process received.
    """

    can_stop = True
    saves_on_stop = frozenset({"signal"})

    def __init__(
        self,
        signals: Iterable[int] = DEFAULT_SIGNALS,
        max_calls_in_flight: int | None = 2,
    ) -> None:
        self.signals = _check_signals(signals)
        if max_calls_in_flight is not None and (not isinstance(max_calls_in_flight, int) or max_calls_in_flight < 1):
            raise ValueError(f"max_calls_in_flight must be a positive integer or None, got {max_calls_in_flight!r}")
        self.max_calls_in_flight = max_calls_in_flight
        self._rate = StepRate(time.monotonic)
        self.caught: signal.Signals | None = None
        self.ignored = 0
        self._previous: dict[signal.Signals, Any] = {}

    def setup(self, trainer: "Trainer") -> None:
        self.caught, self.ignored = None, 0
        self._rate = StepRate(time.monotonic)
        if self.max_calls_in_flight is not None:
            trainer.calls.watch()
        if threading.current_thread() is not threading.main_thread():
            log.warning(
                "fit() runs outside the main thread, where Python cannot catch signals: "
                "SignalCheckpointCallback is inactive; run fit() in the main thread"
            )
            return
        handler = lambda signum, frame: self._record(trainer, signum)  # noqa: E731
        self._previous = {sig: signal.signal(sig, handler) for sig in self.signals}

    def _record(self, trainer: "Trainer", signum: int) -> None:
        """The handler: remember the first signal and ask for the stop, count the rest; nothing else."""
        if self.caught is None:
            self.caught = signal.Signals(signum)
            trainer.request_stop(StopReason.of_signal(signum), any_process=True)
        else:
            self.ignored += 1

    def next_due(self, trainer: "Trainer") -> float:
        """Every call until a call was timed; then the first step at which `QUEUED_SECONDS` of work could be queued."""
        if self.max_calls_in_flight is None:
            return float("inf")
        per_step = self._rate.seconds_per_step
        if per_step is None:
            return EVERY_CALL
        room = QUEUED_SECONDS - self._rate.pending_seconds(trainer.step)
        call = max(per_step * trainer.steps_per_call, 1e-9)
        return trainer.step + max(1, int(room / call)) * trainer.steps_per_call if room > call else EVERY_CALL

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if trainer.stop_reason is None and self.max_calls_in_flight is not None:
            self._bound_queue(trainer)

    def _bound_queue(self, trainer: "Trainer") -> None:
        """Wait for older calls while over `QUEUED_SECONDS` of device work is (or may be) queued."""
        calls, rate = trainer.calls, self._rate
        rate.observe(calls)
        if rate.seconds_per_step is not None and rate.pending_seconds(trainer.step) <= QUEUED_SECONDS:
            return
        if calls.wait(self._calls_allowed(trainer.steps_per_call)):
            rate.observe(calls)

    def _calls_allowed(self, steps_per_call: int) -> int:
        """Unfinished calls allowed after a wait: at most `QUEUED_SECONDS` of work (none before a call was timed)."""
        per_step = self._rate.seconds_per_step
        if per_step is None:
            return 0
        return min(self.max_calls_in_flight, int(QUEUED_SECONDS / max(per_step * steps_per_call, 1e-9)))

    def teardown(self, trainer: "Trainer") -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
        if self.ignored:
            log.info("ignored %d more signal(s) that arrived while stopping", self.ignored)


def _check_signals(signals: Iterable[int]) -> tuple[signal.Signals, ...]:
    checked = []
    for sig in signals:
        try:
            checked.append(signal.Signals(sig))
        except ValueError:
            raise ValueError(f"{sig!r} is not a signal number; pass e.g. signal.SIGTERM") from None
    caught = set(checked) & _UNCATCHABLE
    if caught:
        raise ValueError(f"{min(caught).name} cannot be caught by any process; drop it from signals")
    if not checked:
        raise ValueError("signals is empty; pass at least one, e.g. (signal.SIGTERM,)")
    return tuple(checked)
