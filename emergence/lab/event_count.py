"""`tracker/events` in metrics.csv: the emergence trackers' event count, logged like every metric.

The trackers run on the host (`TrackerCallback` samples them); their events live in
their state, which travels in every checkpoint, so the count is continuous across
resumes. `EventCount` goes right after the `TrackerCallback` in the lab's callback list
and, at every call, `trainer.log`s the count (`tracker/events`, and `tracker/events/run_i`
per run of a sweep, whose mean over runs is `tracker/events`): it joins the next call's
metrics, so a call's row holds the count after the previous call's sample, the number a
checkpoint of that previous call holds (logged again at `on_fit_start` after a resume).
It adds no device work and no transfer, and leaves every call's metrics as they are.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from emergence.callbacks.base import Callback, Metrics
from emergence.lab.trackers import EmergenceTracker

if TYPE_CHECKING:
    from emergence.trainer import Trainer

TAG = "tracker/events"


def _tag(tracker: EmergenceTracker) -> str:
    """`tracker/events`, or `tracker/events/run_3` for a sweep run's tracker (named `emergence/run_3`)."""
    run = re.fullmatch(r".*/(run_\d+)", tracker.name)
    return f"{TAG}/{run.group(1)}" if run else TAG


class EventCount(Callback):
    """Adds the emergence trackers' event counts to each call's train metrics (see the module docstring)."""

    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = [t for t in trackers if isinstance(t, EmergenceTracker)]

    @property
    def state_key(self) -> str:
        return "lab_event_count"

    def counts(self) -> dict[str, float]:
        """Each tracker's event count under its tag, and (for a sweep's trackers) their mean as `tracker/events`."""
        counts = {_tag(t): float(len(t.events)) for t in self.trackers}
        if len(counts) > 1:
            counts[TAG] = sum(counts.values()) / len(counts)
        return counts

    def on_fit_start(self, trainer: "Trainer") -> None:
        trainer.log(self.counts())

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        trainer.log(self.counts())
