"""CheckpointCallback: when to save and what to keep, in Lightning's words, as policies of the checkpoint manager.

A thin policy: its Lightning-shaped arguments become the run's `CheckpointManager`
policies (`save_policy`: `EveryNSteps`, a paced `EveryNSeconds`, both, or `Continuous`;
`keep_policies`: `KeepLastN(keep_last)`, `KeepBestN(monitor, mode, save_top_k)`), which
the Trainer asks at its one save point after all of a call's hooks; a best checkpoint
is requested (`trainer.request_save("best")`) after an evaluation; the final checkpoint
is the Trainer's, at a clean stop (`saves_on_stop`). It has no per-call hook.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from emergence.callbacks._restored import count, number, restored_refusal, restored_state
from emergence.callbacks.base import Callback, Metrics
from emergence.checkpoint import (
    AnyOf,
    Continuous,
    EveryNSeconds,
    EveryNSteps,
    KeepBestN,
    KeepLastN,
    Never,
    SaveContext,
    SavePolicy,
    checkpoint_name,
)
from emergence.schedule import Pace
from emergence.stop import CLEAN

if TYPE_CHECKING:
    from emergence.trainer import Trainer


class CheckpointCallback(Callback):
    """Saves the run as it goes, the way Lightning's `ModelCheckpoint` does.

    - every `every_n_steps` steps and/or `every_n_seconds` seconds (by `clock`): a
      `periodic` checkpoint; only the newest `keep_last` valid ones are kept (None keeps
      all), the oldest deleted only after the new one is durable, on the writer thread;
    - with `monitor`: after each evaluation, a `best` checkpoint when the metric is among
      the `save_top_k` best (`mode` "min" or "max"), kept apart from periodic rotation;
    - `continuous=True` (instead of `every_n_*`): the next `periodic` save starts at the
      first call boundary after the previous one is durable and at least `min_interval_s`
      seconds after it started (Orbax's continuous policy): a SIGKILL then loses about one
      to two saves' duration of work instead of up to one interval, for a disk and a core
      kept busy writing; rotation as above;
    - `save_on_start`: a checkpoint of the starting state; `save_final`: the Trainer's
      final checkpoint when the run ends normally (max_steps, time budget, early stopping:
      the clean stops), a hard link of a periodic file of the same step and content.
    Emergency checkpoints are never touched.
    """

    def __init__(
        self,
        every_n_steps: int | None = None,
        every_n_seconds: float | None = None,
        keep_last: int | None = 5,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
        save_top_k: int = 0,
        save_on_start: bool = False,
        save_final: bool = True,
        clock: Callable[[], float] = time.monotonic,
        continuous: bool = False,
        min_interval_s: float = 0.0,
    ) -> None:
        _check(keep_last, monitor, mode, save_top_k)
        _check_continuous(continuous, min_interval_s, every_n_steps, every_n_seconds)
        self.every_n_steps = every_n_steps
        self.every_n_seconds = every_n_seconds
        self.keep_last = keep_last
        self.monitor = monitor
        self.mode = mode
        self.save_top_k = max(save_top_k, 1) if monitor else 0
        self.save_on_start = save_on_start
        self.save_final = save_final
        self.clock = clock
        self.continuous = continuous
        self.min_interval_s = min_interval_s
        self.best: list[dict[str, Any]] = []
        self.save_policy = _save_policy(every_n_steps, every_n_seconds, continuous, min_interval_s, clock)
        self.keep_policies = (
            *([KeepLastN(keep_last)] if keep_last is not None else []),
            *([KeepBestN(monitor, mode, self.save_top_k)] if monitor else []),
        )
        self.saves_on_stop = CLEAN if save_final else frozenset()

    @property
    def state_key(self) -> str:
        return f"CheckpointCallback{{monitor={self.monitor},mode={self.mode}}}"

    @property
    def best_checkpoint_name(self) -> str | None:
        """File name of the best checkpoint so far (by `monitor`), if any."""
        return self.best[0]["name"] if self.best else None

    def best_checkpoint_path(self, trainer: "Trainer") -> Path | None:
        """Path of the best checkpoint so far in the trainer's checkpoint dir."""
        name = self.best_checkpoint_name
        return trainer.checkpoint_dir / name if name else None

    def state_dict(self) -> dict[str, Any]:
        return {"best": list(self.best)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The best list, type-checked; each name rebuilt from its step (a name read from a file is never a path)."""
        owner = "CheckpointCallback"
        state = restored_state(owner, state)
        entries = state.get("best", [])
        if not isinstance(entries, list):
            raise restored_refusal(owner, "best", entries, "a list")
        self.best = []
        for entry in entries:
            entry = restored_state(owner, entry)
            step = count(owner, entry, "step", None)
            value = number(owner, entry, "value", None)
            if step is None or value is None:
                raise restored_refusal(owner, "best", entry, "entries with a step and a finite value")
            self.best.append({"step": step, "value": value, "name": checkpoint_name("best", step)})

    def setup(self, trainer: "Trainer") -> None:
        if self.continuous and trainer.stops.processes > 1:
            raise ValueError(
                "CheckpointCallback: continuous=True follows each process's own writes and clock, so "
                "under jax.distributed the processes would save at different steps; use every_n_steps"
            )
        if self.every_n_seconds is not None and trainer.stops.processes > 1:
            raise ValueError(
                "CheckpointCallback: every_n_seconds follows each process's own clock, so under "
                "jax.distributed the processes would save at different steps and wait on each other; "
                "use every_n_steps"
            )

    def on_fit_start(self, trainer: "Trainer") -> None:
        if self.save_on_start and trainer.resumed_from is None:
            trainer.request_save("periodic", "start")

    def on_validation_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if not self.monitor:
            return
        if self.monitor not in metrics:
            raise KeyError(f"monitor {self.monitor!r} is not an eval metric; pick one of {sorted(metrics)}")
        value = float(metrics[self.monitor])
        if not self._qualifies(value):
            return
        entry = {"step": trainer.step, "value": value, "name": checkpoint_name("best", trainer.step)}
        ranked = sorted([*self.best, entry], key=lambda e: e["value"], reverse=self.mode == "max")
        self.best = ranked[: self.save_top_k]  # the manager's KeepBestN deletes the files that fell out
        trainer.request_save("best", f"best {self.monitor}", metrics={self.monitor: value})

    def _qualifies(self, value: float) -> bool:
        if value != value:  # NaN never counts as best
            return False
        if len(self.best) < self.save_top_k:
            return True
        worst = self.best[-1]["value"]
        return value < worst if self.mode == "min" else value > worst


def _save_policy(
    steps: int | None, seconds: float | None, continuous: bool, min_interval_s: float, clock: Callable[[], float]
) -> SavePolicy:
    """The manager's policy for these arguments; a clock's policy on `clock`, a seconds interval paced."""
    if continuous:
        return OnClock(Continuous(min_interval_s), clock, pace=None)
    chosen = [
        *([EveryNSteps(steps)] if steps is not None else []),
        *([OnClock(EveryNSeconds(seconds), clock, pace=Pace())] if seconds is not None else []),
    ]
    if not chosen:
        return Never()
    return chosen[0] if len(chosen) == 1 else AnyOf(*chosen)


class OnClock:
    """A save policy on the callback's `clock`, asked, with a `Pace`, only every `LOOK_SECONDS` or so of steps.

    A seconds policy must look at the clock, and the manager would ask it at every call
    (`next_step` 0); paced, a fast loop spends one comparison per call instead, and a
    save is at most `LOOK_SECONDS` late. `pace=None` asks at every call (the continuous
    policy watches for the previous write to be durable).
    """

    def __init__(self, policy: SavePolicy, clock: Callable[[], float], pace: Pace | None) -> None:
        self.policy, self.clock, self.pace = policy, clock, pace
        self._next_look = 0

    def _here(self, context: SaveContext) -> SaveContext:
        return dataclasses.replace(context, time=self.clock())

    def should_save(self, context: SaveContext) -> bool:
        here = self._here(context)
        if self.pace is not None:
            self._next_look = self.pace.next_look(here.step, here.time)
        return self.policy.should_save(here)

    def saved(self, context: SaveContext) -> None:
        self.policy.saved(self._here(context))

    def start(self, context: SaveContext) -> None:
        self.policy.start(self._here(context))
        self._next_look = 0

    @property
    def next_step(self) -> float:
        return self.policy.next_step or self._next_look


def _check_continuous(continuous: bool, min_interval_s: Any, every_n_steps: Any, every_n_seconds: Any) -> None:
    if isinstance(min_interval_s, bool) or not isinstance(min_interval_s, (int, float)) or not min_interval_s >= 0:
        raise ValueError(f"min_interval_s must be zero or positive seconds, got {min_interval_s!r}")
    if continuous and (every_n_steps is not None or every_n_seconds is not None):
        raise ValueError(
            "CheckpointCallback: continuous=True saves whenever the previous save is durable; drop "
            "every_n_steps/every_n_seconds (min_interval_s spaces the saves)"
        )


def _check(keep_last: Any, monitor: Any, mode: str, save_top_k: Any) -> None:
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 1):
        raise ValueError(f"keep_last must be a positive integer or None (keep all), got {keep_last!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if not isinstance(save_top_k, int) or save_top_k < 0:
        raise ValueError(f"save_top_k must be a non-negative integer, got {save_top_k!r}")
    if save_top_k > 0 and not monitor:
        raise ValueError("save_top_k needs monitor=<eval metric name>")
