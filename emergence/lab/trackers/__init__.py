"""Trackers: host-side records of what emerges in a run, fed at an interval, saved in every checkpoint.

- `EmergenceTracker`: population series and the sustained shifts (emergence events) in them.
- `SpecializationTracker`: per-agent behaviour profiles, specialisation index, weight divergence.

Both are plain Python/numpy objects: `update(step, values)` with values already on the
host, `state_dict()` / `load_state_dict()` exact through JSON. `TrackerCallback`
(`emergence.callbacks`) feeds them during training and keeps them in checkpoints; any
object with the `emergence.callbacks.trackers.Tracker` members can ride along.
"""

from __future__ import annotations

from emergence.lab.trackers.history import SeriesHistory
from emergence.lab.trackers.population import DEFAULT_SERIES, EmergenceEvent, EmergenceTracker
from emergence.lab.trackers.specialization import SpecializationTracker, specialization_index, weight_divergence

__all__ = [
    "DEFAULT_SERIES",
    "EmergenceEvent",
    "EmergenceTracker",
    "SeriesHistory",
    "SpecializationTracker",
    "specialization_index",
    "weight_divergence",
]
