"""Trackers: host-side records of what emerges in a run, fed at an interval, saved in every checkpoint.

- `EmergenceTracker`: population series and the sustained shifts (emergence events) in them.
- `SpecializationTracker`: per-agent behaviour profiles, specialisation index, weight divergence.

Both are plain Python/numpy objects: `update(step, values)` with values already on the
host, `state_dict()` / `load_state_dict()` exact through JSON. `TrackerCallback`
(`emergence.callbacks`) feeds them during training and keeps them in checkpoints; any
object with the `Tracker` members can ride along.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from emergence.trackers.history import SeriesHistory
from emergence.trackers.population import DEFAULT_SERIES, EmergenceEvent, EmergenceTracker
from emergence.trackers.specialization import SpecializationTracker, specialization_index, weight_divergence


@runtime_checkable
class Tracker(Protocol):
    """What `TrackerCallback` needs of a tracker."""

    name: str
    history: SeriesHistory

    def update(self, step: int, values: Mapping[str, Any]) -> Any:
        """Record one sample taken at `step` from host values."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state, exact through `json`."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        ...


__all__ = ["DEFAULT_SERIES", "EmergenceEvent", "EmergenceTracker", "SeriesHistory", "SpecializationTracker",
           "Tracker", "specialization_index", "weight_divergence"]
