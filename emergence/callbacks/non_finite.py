"""NonFiniteGuardCallback: a NaN at hour 9 of 12 costs one checkpoint interval, not the session.

Per call it folds "is the monitored loss finite?" into one boolean on the device (a
tiny jitted op: no transfer, no wait). Every `every_n_steps`, and before every
checkpoint (which copies the state to the host anyway), it adds "is every float leaf
of the state finite?" (params, optimizer moments) and fetches that one boolean: the
only sync, at the throttled interval. On a non-finite value it rolls the run back
to the last good checkpoint (`Trainer.restore_checkpoint`; the Trainer never writes a
checkpoint of a non-finite state, so the last one is good) with a fresh key folded
into the state's rng, so the same steps are not replayed into the same NaN.

The step counter does not go back: the rolled-back steps count as spent, like the
batches a large-model run skips after a loss spike, so every metric sink, schedule and
time budget keeps seeing steps that only increase. After `max_rollbacks` rollbacks the
next divergence restores the last good state once more and stops the run cleanly
(reason `non_finite`), so its final checkpoint holds that good state. With no
checkpoint to return to, it stops at once (and the Trainer refuses to save the diverged
state). Every rollback is logged and listed in `rollbacks`, which travels in every
checkpoint (a resumed run keeps its count and stops where a straight run would; a run the
guard stopped, run again, stops at once) and is published in `summary()` as
`rollbacks`, which `FinalizeCallback` writes into summary.json. The Trainer saves only
after every hook of a call, so a save at one of the guard's steps always writes a checked
state: give `CheckpointCallback` a step interval that is a multiple of `every_n_steps`. A
save between two checks of a state that went non-finite is refused with a
`NonFiniteStateError` (the Trainer never writes one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from emergence.callbacks._restored import flag, records, restored_state
from emergence.callbacks.base import EVERY_CALL, Callback, Metrics
from emergence.errors import CheckpointNotFoundError
from emergence.log import get_logger
from emergence.schedule import Every, check_interval
from emergence.stop import StopReason

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

REASON = StopReason("non_finite")
OWNER = "NonFiniteGuardCallback"


@jax.jit
def _fold_metric(flag: jax.Array, value: jax.Array) -> jax.Array:
    """`flag`, or True when `value` holds a NaN or an infinity."""
    return flag | ~jnp.all(jnp.isfinite(value))


@jax.jit
def _fold_state(flag: jax.Array, state: Any) -> jax.Array:
    """`flag`, or True when some float leaf of `state` holds a NaN or an infinity."""
    for leaf in jax.tree.leaves(state):
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            flag = flag | ~jnp.all(jnp.isfinite(leaf))
    return flag


class NonFiniteGuardCallback(Callback):
    """Rolls a diverged run back to its last good checkpoint, at most `max_rollbacks` times; see the module docstring.

    Args:
        monitor: the train metric checked every call (None: only the state is checked).
        every_n_steps: how often the flag is fetched and the state's float leaves checked.
        max_rollbacks: rollbacks before the next divergence stops the run (0: stop at the first).
        check_state: also check every float leaf of the state (params, optimizer moments).

    `rollbacks` lists each one: `{"step", "restored_step", "fold_in"}`.
    """

    can_stop = True

    def __init__(
        self, monitor: str | None = "loss", every_n_steps: int = 100, max_rollbacks: int = 3, check_state: bool = True
    ) -> None:
        check_interval("NonFiniteGuardCallback: every_n_steps", every_n_steps, integer=True, required=True)
        if isinstance(max_rollbacks, bool) or not isinstance(max_rollbacks, int) or max_rollbacks < 0:
            raise ValueError(f"NonFiniteGuardCallback: max_rollbacks must be an integer >= 0, got {max_rollbacks!r}")
        if monitor is None and not check_state:
            raise ValueError("NonFiniteGuardCallback checks nothing: give a monitor or leave check_state=True")
        self.monitor = monitor
        self.every_n_steps = every_n_steps
        self.max_rollbacks = max_rollbacks
        self.check_state = check_state
        self.rollbacks: list[dict[str, int]] = []
        self.stopped = False
        self._schedule = Every(every_n_steps, owner="NonFiniteGuardCallback")
        self._flag: Any = False
        self._checked_keys = False
        self._rolled_back_at: int | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rollbacks": [dict(entry) for entry in self.rollbacks], "stopped": self.stopped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = restored_state(OWNER, state)
        self.rollbacks = records(OWNER, state, "rollbacks", ("step", "restored_step", "fold_in"))
        self.stopped = flag(OWNER, state, "stopped")

    def setup(self, trainer: "Trainer") -> None:
        self.rollbacks, self.stopped, self._checked_keys, self._rolled_back_at = [], False, False, None

    def summary(self) -> dict[str, Any]:
        return {"rollbacks": [dict(entry) for entry in self.rollbacks]}

    def next_due(self, trainer: "Trainer") -> float:
        return EVERY_CALL if self.monitor is not None and not self.stopped else self._schedule.next_step

    def on_fit_start(self, trainer: "Trainer") -> None:
        self._schedule.done(trainer.step)
        self._flag = jnp.asarray(False)
        if self.stopped:  # a run the guard stopped, run again: it is finished
            log.info("non-finite guard: this run already stopped (non_finite); stopping at once")
            trainer.request_stop(REASON)

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if self.stopped:
            return
        if self.monitor is not None and trainer.step != self._rolled_back_at:
            if not self._checked_keys:
                _require(self.monitor, metrics)
                self._checked_keys = True
            self._flag = _fold_metric(self._flag, metrics[self.monitor])
        if self._schedule.due(trainer.step):
            self._schedule.done(trainer.step)
            self._check(trainer)

    def _check(self, trainer: "Trainer") -> None:
        """Fetch the one flag (the only transfer) and roll back if something is not finite."""
        flag = _fold_state(self._flag, trainer.state) if self.check_state else self._flag
        self._flag = jnp.asarray(False)
        if bool(jax.device_get(flag)):
            self._recover(trainer)

    def _recover(self, trainer: "Trainer") -> None:
        self._rolled_back_at = trainer.step  # this call's metrics belong to the discarded steps
        last = len(self.rollbacks) >= self.max_rollbacks
        fold_in = None if last else len(self.rollbacks) + 1
        try:
            good = trainer.restore_checkpoint(fold_in=fold_in)
        except CheckpointNotFoundError:
            log.error("non-finite values at step %d and no checkpoint to roll back to: stopping", trainer.step)
            self._stop(trainer)
            return
        if last:
            log.error(
                "non-finite values at step %d after %d rollbacks: restored the checkpoint of step %d and stopping",
                trainer.step,
                len(self.rollbacks),
                good.step,
            )
            self._stop(trainer)
            return
        self.rollbacks.append({"step": trainer.step, "restored_step": good.step, "fold_in": fold_in})
        log.warning(
            "non-finite values at step %d: rolled back to the checkpoint of step %d with a fresh rng "
            "(rollback %d of at most %d)",
            trainer.step,
            good.step,
            fold_in,
            self.max_rollbacks,
        )

    def _stop(self, trainer: "Trainer") -> None:
        self.stopped = True
        trainer.request_stop(REASON)


def _donated(state: Any) -> bool:
    """The state's buffers were consumed by a jitted call that then failed: nothing to check."""
    return any(getattr(leaf, "is_deleted", lambda: False)() for leaf in jax.tree.leaves(state))


def _require(monitor: str, metrics: Metrics) -> None:
    if monitor not in metrics:
        raise ValueError(
            f"NonFiniteGuardCallback: monitor {monitor!r} is not a train metric; pick one of "
            f"{sorted(metrics)}, or monitor=None to check only the state"
        )
