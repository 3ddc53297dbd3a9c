"""SignalCheckpointCallback: SIGTERM, SIGINT, SIGUSR1 (and Jupyter's interrupt) end a run with a checkpoint.

The handler only records the signal: no I/O happens inside it. At the next call
boundary the callback writes `emergency_step_<N>` of the last completed step, asks the
Trainer to stop with reason `signal:<NAME>` (so `on_fit_end` and the loggers run), and in
`teardown` restores the previous handlers and exits with 128 + signum (143 for
SIGTERM, 130 for SIGINT, 138 for SIGUSR1), unless it runs inside a notebook, where
`fit()` returns. More signals while saving are counted and ignored, so they cannot
tear the save; SIGKILL remains the way to force a stop.

The emergency save has to wait for every call already dispatched (the state it saves
is the output of the newest). JAX lets the host run ~30 calls ahead of the device, which
for second-long calls would spend a scheduler's whole grace period (10 s for
`docker stop`, 30 s for SLURM) before the save even starts; so whenever the device work
queued ahead of the host exceeds `QUEUED_SECONDS` (estimated from observed completions by
a `CallTimer`, and assumed to until one is seen), the callback waits (never copying) until
at most `max_calls_in_flight` calls are unfinished. A queue of short calls is left alone:
it drains within `QUEUED_SECONDS`, and waiting at every call would make a dispatch-bound
loop (a tiny model, one step per call) 1.5-3x slower.

Under `jax.distributed` (the Trainer then has an `agreement`) the handler only records
the signal as `pending`: the `StopAgreement` gathers it from every process and hands
the agreed one to every process's callback (`agree`), so all of them save and stop at
the same step and every one exits with that signal's code.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from emergence.callbacks._call_timer import CallTimer
from emergence.callbacks._save_once import save_last_state
from emergence.callbacks.base import Callback, Metrics
from emergence.log import get_logger
from emergence.platforms.process import in_ipython_kernel

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}
QUEUED_SECONDS = 0.25


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
    it would not get theirs.
    """

    def __init__(self, signals: Iterable[int] = DEFAULT_SIGNALS, exit_process: bool | None = None,
                 max_calls_in_flight: int | None = 2) -> None:
        self.signals = _check_signals(signals)
        if max_calls_in_flight is not None and (not isinstance(max_calls_in_flight, int) or max_calls_in_flight < 1):
            raise ValueError(f"max_calls_in_flight must be a positive integer or None, got {max_calls_in_flight!r}")
        self.exit_process = exit_process
        self.max_calls_in_flight = max_calls_in_flight
        self._timer = CallTimer(time.monotonic)
        self._seen_step = 0
        self.received: signal.Signals | None = None
        self.pending: signal.Signals | None = None
        self.ignored = 0
        self._previous: dict[signal.Signals, Any] = {}
        self._handled = False
        self._failed = False

    def setup(self, trainer: "Trainer") -> None:
        self.received, self.pending, self.ignored, self._handled, self._failed = None, None, 0, False, False
        self._timer = CallTimer(time.monotonic)
        if threading.current_thread() is not threading.main_thread():
            log.warning("fit() runs outside the main thread, where Python cannot catch signals: "
                        "SignalCheckpointCallback is inactive; run fit() in the main thread")
            return
        handler = self._record if getattr(trainer, "agreement", None) is None else self._record_pending
        self._previous = {sig: signal.signal(sig, handler) for sig in self.signals}

    def _record(self, signum: int, frame: Any) -> None:
        """The handler: remember the first signal, count the rest; nothing else."""
        if self.received is None:
            self.received = signal.Signals(signum)
        else:
            self.ignored += 1

    def _record_pending(self, signum: int, frame: Any) -> None:
        """The handler under `jax.distributed`: remember the first signal until the processes agree on it."""
        if self.pending is None:
            self.pending = signal.Signals(signum)
        else:
            self.ignored += 1

    def agree(self, received: signal.Signals) -> None:
        """The processes agreed on `received` (see `StopAgreement`): act on it at this call boundary."""
        if self.received is None:
            self.received = received

    def on_fit_start(self, trainer: "Trainer") -> None:
        self._seen_step = trainer.step
        self._act(trainer)

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if self.received is not None:
            self._act(trainer)
        elif self.max_calls_in_flight is not None:
            self._bound_queue(trainer.step, metrics)

    def _bound_queue(self, step: int, metrics: Metrics) -> None:
        """Wait for older calls while more than `QUEUED_SECONDS` of device work is (or may be) queued."""
        timer = self._timer
        timer.dispatched(step, step - self._seen_step, metrics)
        self._seen_step = step
        if timer.seconds_per_step is None or timer.pending_seconds(step) > QUEUED_SECONDS:
            timer.wait(self.max_calls_in_flight)

    def on_exception(self, trainer: "Trainer", exception: BaseException) -> None:
        self._failed = True

    def on_fit_end(self, trainer: "Trainer", reason: str) -> None:
        self._act(trainer)

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

    def _act(self, trainer: "Trainer") -> None:
        """Once a signal came: stop at this boundary and save the last completed step."""
        if self.received is None or self._handled:
            return
        self._handled = True
        reason = f"signal:{self.received.name}"
        trainer.request_stop(reason)
        save_last_state(trainer, "emergency", reason)

    def _should_exit(self) -> bool:
        return self.exit_process if self.exit_process is not None else not in_ipython_kernel()


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
