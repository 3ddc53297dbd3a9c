"""StopAgreement: under `jax.distributed`, every process stops at the same step for the same reason.

A save of a state that spans processes is a collective, so every process must stop,
and take its emergency or final save, at the same step. Stop decisions that are not
step-based are local: a SIGTERM reaches one process, and a time budget is measured by
each process on its own clock. The Trainer adds this hook (first in the list) only when
`jax.process_count() > 1`, checked once as `fit()` starts; one process never sees it.

Every `AGREE_EVERY_N_CALLS` calls, and after the last call, each process contributes two
small ints, gathered with `multihost_utils.process_allgather` (a collective, so the
host waits for the device work queued ahead of it: hence every few calls, not each):

- the signal its `SignalCheckpointCallback` recorded since (0 for none): the first
  non-zero one in process order is handed to every process's signal callback, which
  then saves and stops at this boundary as on one process;
- the stop it proposes (`propose`, the time budget's way to stop): process 0's
  proposal alone counts, and becomes `request_stop` on every process.

So a signal or a time-budget stop takes effect up to `AGREE_EVERY_N_CALLS` calls later than
on one process.
"""
from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import numpy as np
from jax.experimental import multihost_utils

from emergence.callbacks.base import Callback, Metrics
from emergence.callbacks.signals import SignalCheckpointCallback
from emergence.log import get_logger

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.parallel")

AGREE_EVERY_N_CALLS = 8
STOP_REASONS = ("time_budget",)


class StopAgreement(Callback):
    """Agrees across processes, at call boundaries, on a signal received anywhere and on process 0's stop."""

    def __init__(self) -> None:
        self._calls = 0
        self._proposed = 0

    def setup(self, trainer: "Trainer") -> None:
        self._calls, self._proposed = 0, 0

    def propose(self, reason: str) -> None:
        """Ask to stop with `reason` (one of `STOP_REASONS`); process 0's stops every process at the next agreement."""
        if reason not in STOP_REASONS:
            raise ValueError(f"cannot agree on stop reason {reason!r}; use one of {STOP_REASONS}")
        if not self._proposed:
            self._proposed = STOP_REASONS.index(reason) + 1

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        self._calls += 1
        if self._calls % AGREE_EVERY_N_CALLS == 0 or trainer.step >= trainer.max_steps:
            self.agree(trainer)

    def agree(self, trainer: "Trainer") -> None:
        """The collective: gather every process's signal and proposal, act on the agreed one."""
        listeners = [cb for cb in trainer.callbacks if isinstance(cb, SignalCheckpointCallback)]
        mine = next((int(cb.pending) for cb in listeners if cb.pending is not None), 0)
        table = np.asarray(multihost_utils.process_allgather(np.array([mine, self._proposed], np.int32)))
        signals = [int(s) for s in table[:, 0] if s]
        if signals:
            log.info("processes agree to stop at step %d on %s", trainer.step, signal.Signals(signals[0]).name)
            for cb in listeners:
                cb.agree(signal.Signals(signals[0]))
        elif table[0, 1]:
            trainer.request_stop(STOP_REASONS[int(table[0, 1]) - 1])
