"""TrackerCallback: feeds trackers at its own interval and keeps their history in every checkpoint.

Between samples it reads only host integers (the step), so training never waits for
the device on its account. At a sample it takes the last call's metrics and, when
there is one, the output of a *probe* (a jittable `probe(state) -> dict of arrays`,
e.g. per-agent action counts from a short greedy rollout) off the device with one
`jax.device_get`, and hands the host values to each tracker's `update(step, values)`.

Samples are taken at the first call boundary at or after each multiple of
`every_n_steps` (an `Every`), and at `max_steps` when there is one. Their state travels in every checkpoint under this
callback's `state_key`, so a run killed and resumed records exactly the samples, with
exactly the values, that a straight run records (same `steps_per_call`): no gaps, no
duplicates. The Trainer saves only after all of a call's hooks ran, so a checkpoint at a
sampling step always holds that step's sample, whatever the callback order. Between
samples the loop does not call it at all (`next_due()`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import jax

from emergence.callbacks.base import Callback, Metrics
from emergence.log import get_logger
from emergence.schedule import Every, check_interval

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

Probe = Callable[[Any], Metrics]


@runtime_checkable
class Tracker(Protocol):
    """What `TrackerCallback` needs of a tracker."""

    name: str

    def update(self, step: int, values: Mapping[str, Any]) -> Any:
        """Record one sample taken at `step` from host values."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state, exact through `json`."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        ...


class TrackerCallback(Callback):
    """Samples the run every `every_n_steps` steps into `trackers`.

    Args:
        every_n_steps: sampling interval in train steps (the only times values leave the device).
        trackers: `EmergenceTracker`, `SpecializationTracker` or anything with their
            members (`name`, `update`, `state_dict`, `load_state_dict`); names must differ.
        probe: a jittable `probe(state) -> dict of arrays` run at each sample (it must not
            change the state). None uses the task's `tracker_probe` if it has one,
            else only `trainer.last_metrics` are sampled.
    """

    def __init__(self, every_n_steps: int, trackers: Sequence["Tracker"], probe: Probe | None = None) -> None:
        check_interval("TrackerCallback: every_n_steps", every_n_steps, integer=True, required=True)
        names = [t.name for t in trackers]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"trackers must be a non-empty list with distinct names, got {names}")
        self.every_n_steps = every_n_steps
        self.trackers = list(trackers)
        self.probe = probe
        self.schedule = Every(every_n_steps, owner="TrackerCallback")
        self._probe_call: Callable | None = None

    @property
    def last_sample_step(self) -> int:
        """The step of the last sample (0 before any)."""
        return self.schedule.last_step

    @property
    def state_key(self) -> str:
        return f"TrackerCallback{{{','.join(t.name for t in self.trackers)}}}"

    def setup(self, trainer: "Trainer") -> None:
        probe = self.probe or getattr(trainer.task, "tracker_probe", None)
        self._probe_call = jax.jit(probe) if probe is not None else None

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if self._due(trainer):
            self._sample(trainer)

    def next_due(self, trainer: "Trainer") -> float:
        end = trainer.max_steps if trainer.max_steps is not None and trainer.max_steps > self.last_sample_step else None
        return min(self.schedule.next_step, end if end is not None else float("inf"))

    def _due(self, trainer: "Trainer") -> bool:
        step = trainer.step
        if self.schedule.due_by_steps(step):
            return True
        return trainer.max_steps is not None and step >= trainer.max_steps > self.last_sample_step

    def _sample(self, trainer: "Trainer") -> None:
        outputs = dict(trainer.last_metrics)
        if self._probe_call is not None:
            outputs.update(self._probe_call(trainer.state))
        values = jax.device_get(outputs)
        for tracker in self.trackers:
            tracker.update(trainer.step, values)
        self.schedule.done(trainer.step)

    def state_dict(self) -> dict[str, Any]:
        return {"last_sample_step": self.last_sample_step, "trackers": {t.name: t.state_dict() for t in self.trackers}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.schedule.done(int(state["last_sample_step"]))
        saved = state["trackers"]
        for tracker in self.trackers:
            if tracker.name in saved:
                tracker.load_state_dict(saved[tracker.name])
            else:
                log.warning(
                    "tracker %r is not in the checkpoint: its history starts at step %d",
                    tracker.name,
                    self.last_sample_step,
                )
