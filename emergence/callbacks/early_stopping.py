"""EarlyStoppingCallback: stop when a monitored metric has stopped improving, as Keras and Lightning do.

Each check compares the metric with the best value so far: it improves when it is
lower (`mode="min"`) or higher (`"max"`) by more than `min_delta`. After `patience`
checks in a row without improvement (Lightning's and Keras's count) the run is asked to stop (reason
`early_stopping`), and it stops cleanly at the next call boundary: a final checkpoint,
a summary. NaN or infinite values never count as an improvement.

What is checked: by default the eval metrics, at each evaluation (the Trainer's
`eval_every_n_steps`). With `every_n_steps`, a train metric instead: the call's values
are summed on the device (no transfer) and their step-weighted mean over the interval is
fetched once per interval. The best value, the count of checks without improvement and
any open interval travel in every checkpoint, so a resumed run keeps its patience count
and checks at the same steps as a run that was never interrupted: it stops where a straight
run would. A run that stopped early, run again (a notebook's "run all"), stops at once: its
`stopped_step` travels too. Restored state is type-checked before use.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import jax

from emergence.callbacks._restored import count, number, restored_state
from emergence.callbacks.base import EVERY_CALL, Callback, Metrics
from emergence.log import get_logger
from emergence.schedule import Every, check_interval
from emergence.stop import StopReason

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

REASON = StopReason("early_stopping")
OWNER = "EarlyStoppingCallback"


class EarlyStoppingCallback(Callback):
    """Stops training when `monitor` has not improved by `min_delta` for `patience` checks; see the module docstring.

    Args:
        monitor: the metric's name, as the task's `eval_step` (or `train_step`) returns it.
        mode: `"min"` (lower is better) or `"max"`.
        patience: stop at this many checks in a row without improvement (as Lightning and Keras
            count: 0 and 1 both stop at the first).
        min_delta: how much better than the best a value must be to count as an improvement.
        every_n_steps: watch a train metric, fetched this often; None (default) watches eval metrics.

    `best`, `wait` (checks without improvement) and `stopped_step` say where it stands.
    """

    can_stop = True

    def __init__(
        self,
        monitor: str,
        mode: Literal["min", "max"] = "min",
        patience: int = 3,
        min_delta: float = 0.0,
        *,
        every_n_steps: int | None = None,
    ) -> None:
        _check(monitor, mode, patience, min_delta)
        check_interval("EarlyStoppingCallback: every_n_steps", every_n_steps, integer=True)
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = float(min_delta)
        self.every_n_steps = every_n_steps
        self.best: float | None = None
        self.wait = 0
        self.stopped_step: int | None = None
        self._schedule = Every(every_n_steps, owner="EarlyStoppingCallback")
        self._sum: Any = 0.0
        self._steps = 0
        self._seen_step = 0
        self._checked_keys = False
        self._requested = False

    @property
    def state_key(self) -> str:
        return f"EarlyStoppingCallback{{monitor={self.monitor},mode={self.mode}}}"

    def state_dict(self) -> dict[str, Any]:
        window = float(jax.device_get(self._sum)) if self._steps else 0.0  # a save syncs anyway
        return {
            "best": self.best,
            "wait": self.wait,
            "stopped_step": self.stopped_step,
            "window_sum": window,
            "window_steps": self._steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = restored_state(OWNER, state)
        self.best = number(OWNER, state, "best", None)
        self.wait = count(OWNER, state, "wait")
        self.stopped_step = count(OWNER, state, "stopped_step", None)
        self._sum = number(OWNER, state, "window_sum")
        self._steps = count(OWNER, state, "window_steps")

    def setup(self, trainer: "Trainer") -> None:
        self.best, self.wait, self.stopped_step = None, 0, None
        self._sum, self._steps, self._checked_keys, self._requested = 0.0, 0, False, False

    def on_fit_start(self, trainer: "Trainer") -> None:
        if self.every_n_steps is None and not getattr(trainer, "eval_every_n_steps", None):
            raise ValueError(
                f"EarlyStoppingCallback(monitor={self.monitor!r}) watches eval metrics but the Trainer "
                f"never evaluates; pass eval_every_n_steps to the Trainer, or every_n_steps here to "
                f"watch a train metric"
            )
        self._schedule.done(trainer.step)
        self._seen_step = trainer.step
        if self.stopped_step is not None:  # a run that stopped early, run again ("run all"): it is finished
            log.info("early stopping: this run already stopped early at step %d; stopping at once", self.stopped_step)
            self._requested = True
            trainer.request_stop(REASON)

    def next_due(self, trainer: "Trainer") -> float:
        return EVERY_CALL if self.every_n_steps is not None else float("inf")  # sums every call, or eval only

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if self.every_n_steps is None or trainer.step == self._seen_step:
            return
        if not self._checked_keys:
            self._require(metrics, "train")
        steps, self._seen_step = trainer.step - self._seen_step, trainer.step
        self._sum = self._sum + metrics[self.monitor] * steps  # stays on the device: no transfer
        self._steps += steps
        if self._schedule.due(trainer.step):
            value = float(jax.device_get(self._sum)) / self._steps
            self._sum, self._steps = 0.0, 0
            self._schedule.done(trainer.step)
            self._judge(trainer, value)

    def on_validation_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if self.every_n_steps is not None:
            return
        self._require(metrics, "eval")
        self._judge(trainer, float(jax.device_get(metrics[self.monitor])))

    def improved(self, value: float) -> bool:
        """Whether `value` beats the best so far by more than `min_delta` (never when not finite)."""
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def _judge(self, trainer: "Trainer", value: float) -> None:
        if self.improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience and not self._requested:
            self._requested = True
            self.stopped_step = trainer.step
            log.info(
                "early stopping at step %d: %s has not improved on %s for %d checks",
                trainer.step,
                self.monitor,
                self.best,
                self.wait,
            )
            trainer.request_stop(REASON)

    def _require(self, metrics: Metrics, which: str) -> None:
        if self.monitor not in metrics:
            raise ValueError(
                f"EarlyStoppingCallback: monitor {self.monitor!r} is not among the {which} metrics; "
                f"pick one of {sorted(metrics)}"
            )
        self._checked_keys = True


def _check(monitor: Any, mode: Any, patience: Any, min_delta: Any) -> None:
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"EarlyStoppingCallback: monitor must be a metric name, got {monitor!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"EarlyStoppingCallback: mode must be 'min' or 'max', got {mode!r}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(
            f"EarlyStoppingCallback: patience must be an integer >= 0 (checks without improvement "
            f"before stopping), got {patience!r}"
        )
    if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not min_delta >= 0:
        raise ValueError(f"EarlyStoppingCallback: min_delta must be a number >= 0, got {min_delta!r}")
