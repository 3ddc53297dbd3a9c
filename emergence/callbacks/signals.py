"""SignalCheckpointCallback: SIGTERM, SIGINT, SIGUSR1 (and Jupyter's interrupt) end a run with a checkpoint.

The handler only records the signal and proposes the stop `signal:<NAME>` to
`trainer.stops` (any process's proposal counts): no I/O happens inside it. At the next
call boundary where that stop is agreed, the callback writes `emergency_step_<N>` of the
last completed step, asks the Trainer to stop with reason `signal:<NAME>` (so
`on_fit_end` and the loggers run), and in `teardown` restores the previous handlers and
exits with 128 + signum (143 for SIGTERM, 130 for SIGINT, 138 for SIGUSR1), unless it
runs inside a notebook, where `fit()` returns. More signals while saving are counted and
ignored, so they cannot tear the save; SIGKILL remains the way to force a stop.

The emergency save has to wait for every call already dispatched (the state it saves
is the output of the newest). JAX lets the host run ~30 calls ahead of the device, which
for second-long calls would spend a scheduler's whole grace period (10 s for
`docker stop`, 30 s for SLURM) before the save even starts; so whenever the device work
queued ahead of the host exceeds `QUEUED_SECONDS` (estimated from the completions the
Trainer's call tracker `trainer.calls` saw, and assumed to until one is seen), the
callback waits (never copying) until at most `max_calls_in_flight` calls are unfinished.
A queue of short calls is left alone: it drains within `QUEUED_SECONDS`, and waiting at
every call would make a dispatch-bound loop (a tiny model, one step per call) 1.5-3x slower.

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
        max_calls_in_flight: how many dispatched calls may be unfinished at a call
            boundary once more than `QUEUED_SECONDS` of device work is queued (2 keeps the
            device busy): an emergency save waits for at most one more call than that, or
            about `QUEUED_SECONDS`. None lets the host run as far ahead as JAX allows.

    Put it last in the callback list: its `teardown` ends the process, so callbacks after
    it would not get theirs. `caught` is the first signal this process received, `received`
    the one the run stopped on (the same, except that under `jax.distributed` it may have
    reached another process).
    """

    can_stop = True

    def __init__(self, signals: Iterable[int] = DEFAULT_SIGNALS, exit_process: bool | None = None,
                 max_calls_in_flight: int | None = 2) -> None:
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
            log.warning("fit() runs outside the main thread, where Python cannot catch signals: "
                        "SignalCheckpointCallback is inactive; run fit() in the main thread")
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
        agreed = trainer.stops.agreed
        if agreed is not None and not self._handled and agreed.startswith(PREFIX):
            self._act(trainer, _agreed_signal(trainer))
        elif self.max_calls_in_flight is not None:
            self._bound_queue(trainer)

    def _bound_queue(self, trainer: "Trainer") -> None:
        """Wait for older calls while more than `QUEUED_SECONDS` of device work is (or may be) queued."""
        calls, rate = trainer.calls, self._rate
        rate.observe(calls)
        if rate.seconds_per_step is None or rate.pending_seconds(trainer.step) > QUEUED_SECONDS:
            if calls.wait(self.max_calls_in_flight):
                rate.observe(calls)

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
        trainer.request_stop(reason)
        save_last_state(trainer, "emergency", reason)

    def _should_exit(self) -> bool:
        return self.exit_process if self.exit_process is not None else not in_ipython_kernel()


def _agreed_signal(trainer: "Trainer") -> signal.Signals | None:
    """The signal of the agreed stop, when it is `signal:<NAME>` of a known signal."""
    agreed = trainer.stops.agreed
    if agreed is None or not agreed.startswith(PREFIX):
        return None
    return signal.Signals.__members__.get(agreed[len(PREFIX):])


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
