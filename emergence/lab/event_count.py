"""`tracker/events` in metrics.csv: the emergence trackers' event count, logged like every metric.

The trackers run on the host (`TrackerCallback` samples them); their events live in
their state, which travels in every checkpoint, so the count is continuous across
resumes. `EventCount` goes first in the callback list and writes, at every call, the
count so far into that call's metrics (`tracker/events`, and `tracker/events/run_i`
per run of a sweep, whose mean over runs is `tracker/events`), before the logger takes
them in: a count of the samples up to the previous call, the same number the
checkpoint holds. It adds no device work and no transfer.
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

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        counts = {_tag(t): float(len(t.events)) for t in self.trackers}
        if len(counts) > 1:
            counts[TAG] = sum(counts.values()) / len(counts)
        metrics.update(counts)
