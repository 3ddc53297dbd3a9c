"""SignalCheckpointCallback: SIGTERM, SIGINT, SIGUSR1 (and Jupyter's interrupt) end a run with a checkpoint.

The handler only records the signal and proposes the stop `signal:<NAME>` to
`trainer.stops` (any process's proposal counts): no I/O happens inside it. At the next
call boundary where that stop is agreed, the callback writes `emergency_step_<N>` of the
last completed step, asks the Trainer to stop with reason `signal:<NAME>` (so
`on_fit_end` and the loggers run), and in `teardown` restores the previous handlers and
exits with 128 + signum (143 for SIGTERM, 130 for SIGINT, 138 for SIGUSR1), unless it
runs inside a notebook, where `fit()` returns. More signals while saving are counted and
ignored, so they cannot tear the save; SIGKILL remains the way to force a stop.

An emergency save waits only for the call in flight. The handler's proposal is agreed at
once on one process, so the Trainer's loop sees the stop before it dispatches another call.
What the save must wait for is the device work already queued: JAX lets the host run ~30
calls ahead of the device, which for second-long calls would spend a scheduler's whole
grace period (10 s for `docker stop`, 30 s for SLURM) before the save even starts. So at
each call boundary where more than `QUEUED_SECONDS` of device work is queued (estimated
from the completions the Trainer's call tracker `trainer.calls` saw, and assumed to until
one is seen), the callback waits (never copying) until at most
`min(max_calls_in_flight, QUEUED_SECONDS // one call)` calls are unfinished: none at all
once a call is longer than `QUEUED_SECONDS`. A signal that arrives during that wait is
handled when it returns, with the device idle: the save starts at once, after at most
the rest of one call. One noticed earlier (during the hooks) stops the dispatching just
the same, and the save first waits for the calls in flight, so it always starts with the
device idle and its snapshot copies at once. In general it waits for at most one call plus `QUEUED_SECONDS` of
queued work. The device idles only for the host's dispatch between long calls (well under
1% of a call longer than `QUEUED_SECONDS`); a queue of short calls is left alone, since it
drains within `QUEUED_SECONDS` and waiting at every call would make a dispatch-bound loop
(a tiny model, one step per call) 1.5-3x slower.

A signal is honoured wherever it lands once `setup` has installed the handler: while the
first call compiles (the call then runs, and its step is saved), during an evaluation
(saved as the evaluation ends), during a periodic save, synchronous or on the writer
thread (that save completes, then the emergency one is written), or during `on_fit_start`
work and the restore before it (no step trained: the "nothing to save" line). The stop
reaches the loop through the Trainer's stop flag, not through a hook, so nothing has to
reach a step boundary first.

Under `jax.distributed` the proposal is agreed every few calls (see `emergence.parallel.stops`):
every process reads the same agreed `signal:<NAME>` at the same boundary, so all of them
save and stop at the same step and every one exits with that signal's code, also the
processes that received nothing.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from emergence.callbacks._save_once import save_last_state
from emergence.callbacks.base import Callback, Metrics
from emergence.calls import StepRate
from emergence.log import get_logger
from emergence.platforms.process import in_ipython_kernel

if TYPE_CHECKING:
    from emergence.parallel.stops import Stops
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}
QUEUED_SECONDS = 0.25
PREFIX = "signal:"


class SignalCheckpointCallback(Callback):
    """Turns a termination signal into an emergency checkpoint and a clean stop.

    Args:
        signals: the signals to catch (SLURM's `--signal=USR1@90` arrives as SIGUSR1).
        exit_process: exit with 128 + signum after `fit()` has wound down; None (the
            default) exits everywhere except inside a Jupyter/IPython kernel.
        max_calls_in_flight: at most this many dispatched calls may be unfinished at a
            call boundary once more than `QUEUED_SECONDS` of device work is queued, and
            never more than `QUEUED_SECONDS` of work (so none once a call is longer): an
            emergency save waits for the call in flight plus at most `QUEUED_SECONDS` of
            queued calls. None lets the host run as far ahead as JAX allows.

    Put it last in the callback list: its `teardown` ends the process, so callbacks after
    it would not get theirs. `caught` is the first signal this process received, `received`
    the one the run stopped on (the same, except that under `jax.distributed` it may have
    reached another process).
    """

    can_stop = True

    def __init__(
        self,
        signals: Iterable[int] = DEFAULT_SIGNALS,
        exit_process: bool | None = None,
        max_calls_in_flight: int | None = 2,
    ) -> None:
        self.signals = _check_signals(signals)
        if max_calls_in_flight is not None and (not isinstance(max_calls_in_flight, int) or max_calls_in_flight < 1):
            raise ValueError(f"max_calls_in_flight must be a positive integer or None, got {max_calls_in_flight!r}")
        self.exit_process = exit_process
        self.max_calls_in_flight = max_calls_in_flight
        self._rate = StepRate(time.monotonic)
        self.caught: signal.Signals | None = None
        self.received: signal.Signals | None = None
        self.ignored = 0
        self._previous: dict[signal.Signals, Any] = {}
        self._handled = False
        self._failed = False

    def setup(self, trainer: "Trainer") -> None:
        self.caught, self.received, self.ignored, self._handled, self._failed = None, None, 0, False, False
        self._rate = StepRate(time.monotonic)
        if self.max_calls_in_flight is not None:
            trainer.calls.watch()
        if threading.current_thread() is not threading.main_thread():
            log.warning(
                "fit() runs outside the main thread, where Python cannot catch signals: "
                "SignalCheckpointCallback is inactive; run fit() in the main thread"
            )
            return
        stops = trainer.stops
        handler = lambda signum, frame: self._record(stops, signum)  # noqa: E731
        self._previous = {sig: signal.signal(sig, handler) for sig in self.signals}

    def _record(self, stops: "Stops", signum: int) -> None:
        """The handler: remember the first signal and propose the stop, count the rest; nothing else."""
        if self.caught is None:
            self.caught = signal.Signals(signum)
            stops.propose(PREFIX + self.caught.name, any_process=True)
        else:
            self.ignored += 1

    def on_fit_start(self, trainer: "Trainer") -> None:
        self._act(trainer, _agreed_signal(trainer))

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if trainer.stops.agreed is None and self.max_calls_in_flight is not None and not self._bound_queue(trainer):
            return
        self._act_on_agreed(trainer)  # a signal agreed before this boundary, or handled while waiting

    def on_validation_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        self._act_on_agreed(trainer)  # a signal during the evaluation: save now, before any on_fit_end

    def _act_on_agreed(self, trainer: "Trainer") -> None:
        agreed = trainer.stops.agreed
        if agreed is not None and not self._handled and agreed.startswith(PREFIX):
            self._act(trainer, _agreed_signal(trainer))

    def _bound_queue(self, trainer: "Trainer") -> bool:
        """Wait for older calls while over `QUEUED_SECONDS` of device work is (or may be) queued; True if it did."""
        calls, rate = trainer.calls, self._rate
        rate.observe(calls)
        if rate.seconds_per_step is not None and rate.pending_seconds(trainer.step) <= QUEUED_SECONDS:
            return False
        if not calls.wait(self._calls_allowed(trainer.steps_per_call)):
            return False
        rate.observe(calls)
        return True

    def _calls_allowed(self, steps_per_call: int) -> int:
        """Unfinished calls allowed after a wait: at most `QUEUED_SECONDS` of work (none before a call was timed)."""
        per_step = self._rate.seconds_per_step
        if per_step is None:
            return 0
        return min(self.max_calls_in_flight, int(QUEUED_SECONDS / max(per_step * steps_per_call, 1e-9)))

    def on_exception(self, trainer: "Trainer", exception: BaseException) -> None:
        self._failed = True

    def on_fit_end(self, trainer: "Trainer", reason: str) -> None:
        local = self.caught if trainer.stops.processes == 1 else None  # one process: a signal after another stop
        self._act(trainer, _agreed_signal(trainer) or local)

    def teardown(self, trainer: "Trainer") -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
        if self.received is None or self._failed:
            return
        if self.ignored:
            log.info("ignored %d more signal(s) that arrived while stopping", self.ignored)
        if self._should_exit():
            code = 128 + int(self.received)
            log.info("stopped by %s: exiting with code %d", self.received.name, code)
            sys.exit(code)
        log.info("stopped by %s: fit() returns (notebook)", self.received.name)

    def _act(self, trainer: "Trainer", received: signal.Signals | None) -> None:
        """Once a signal is agreed: stop at this boundary and save the last completed step."""
        if received is None or self._handled:
            return
        self._handled, self.received = True, received
        reason = PREFIX + received.name
        trainer.request_stop(reason)  # no call is dispatched after this one
        if trainer.calls.watched and not self._failed:
            trainer.calls.wait(0)  # the call in flight: the save then starts with the device idle
        save_last_state(trainer, "emergency", reason)

    def _should_exit(self) -> bool:
        return self.exit_process if self.exit_process is not None else not in_ipython_kernel()


def _agreed_signal(trainer: "Trainer") -> signal.Signals | None:
    """The signal of the agreed stop, when it is `signal:<NAME>` of a known signal."""
    agreed = trainer.stops.agreed
    if agreed is None or not agreed.startswith(PREFIX):
        return None
    return signal.Signals.__members__.get(agreed[len(PREFIX) :])


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
