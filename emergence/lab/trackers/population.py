"""EmergenceTracker: population-level series of the foraging world and the emergence events in them.

Fed on the host with values already fetched (see `TrackerCallback`): each `update`
appends one point per series and runs a `ShiftDetector` on it. An *emergence event*
is a sustained shift of a series beyond `k` standard deviations of its recent window
(see `emergence.lab.trackers.shift` for the exact rule), recorded with its series, its
onset step and the step it was detected at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from emergence.lab.trackers.history import SeriesHistory
from emergence.lab.trackers.shift import ShiftDetector
from emergence.log import get_logger

log = get_logger("emergence.lab.trackers")

DEFAULT_SERIES = ("population", "births", "deaths", "food", "mean_energy", "lifespan")


@dataclass(frozen=True)
class EmergenceEvent:
    """A sustained shift of one series.

    `step` is the onset (the first point of the shift), `detected_step` the point at
    which it had lasted `sustain` points; `before` is the mean of the reference window,
    `after` the mean over the shift, `z` their difference in reference standard deviations.
    """

    series: str
    step: int
    detected_step: int
    direction: str
    before: float
    after: float
    z: float


class EmergenceTracker:
    """Population series and their emergence events.

    Args:
        series: the series to track, as names (read from the value of the same key) or
            `{series name: value key}` (e.g. `{"food": "food_per_agent_step"}`).
        window: points in the reference window (and the warm-up before any test).
        k: how many reference standard deviations away a point must be.
        sustain: consecutive beyond points (same side) that make a shift an event.
        min_std: floor of the reference standard deviation, so a flat window (a
            constant population) still needs a real change to count.
        name: the key of this tracker's state inside `TrackerCallback`'s state.

    Each value is reduced with `np.mean` (a metric averaged over fused steps or
    environments arrives as a scalar or an array); non-finite values are skipped.
    """

    def __init__(
        self,
        series: Sequence[str] | Mapping[str, str] = DEFAULT_SERIES,
        *,
        window: int = 20,
        k: float = 3.0,
        sustain: int = 3,
        min_std: float = 1e-6,
        name: str = "emergence",
    ) -> None:
        _check(window, k, sustain, min_std)
        self.keys = dict(series) if isinstance(series, Mapping) else {s: s for s in series}
        if not self.keys:
            raise ValueError("EmergenceTracker needs at least one series to track")
        self.window, self.k, self.sustain, self.min_std, self.name = window, float(k), sustain, float(min_std), name
        self.history = SeriesHistory()
        self.events: list[EmergenceEvent] = []
        self._detectors = {s: self._detector() for s in self.keys}

    def _detector(self) -> ShiftDetector:
        return ShiftDetector(self.window, self.k, self.sustain, self.min_std)

    def update(self, step: int, values: Mapping[str, Any]) -> list[EmergenceEvent]:
        """Record one point of every tracked series present in `values`; return the events it completed."""
        present = {s: key for s, key in self.keys.items() if key in values}
        if not present:
            raise KeyError(
                f"{self.name}: none of the keys {sorted(self.keys.values())} is in the values "
                f"({sorted(values)}); pass series={{name: key}} naming keys the task reports"
            )
        found = []
        for series, key in present.items():
            if not self.history.append(series, step, np.mean(values[key])):
                continue
            shift = self._detectors[series].observe(self.history.value_list(series))
            if shift is not None:
                onset = int(self.history.steps(series)[shift.onset])
                found.append(
                    EmergenceEvent(
                        series=series,
                        step=onset,
                        detected_step=int(step),
                        direction=shift.direction,
                        before=shift.before,
                        after=shift.after,
                        z=shift.z,
                    )
                )
        self.events.extend(found)
        return found

    def config(self) -> dict[str, Any]:
        """The settings that decide what counts as an event."""
        return {
            "series": dict(self.keys),
            "window": self.window,
            "k": self.k,
            "sustain": self.sustain,
            "min_std": self.min_std,
        }

    def state_dict(self) -> dict[str, Any]:
        """History, events and detector state as JSON-able data (exact through `json`)."""
        return {
            "config": self.config(),
            "history": self.history.state_dict(),
            "events": [asdict(e) for e in self.events],
            "detectors": {s: d.state_dict() for s, d in self._detectors.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved state; a changed config is logged (detection goes on with the new one)."""
        if state.get("config") != self.config():
            log.warning(
                "%s: tracker settings changed since the checkpoint (%s -> %s)",
                self.name,
                state.get("config"),
                self.config(),
            )
        self.history.load_state_dict(state["history"])
        self.events = [EmergenceEvent(**e) for e in state["events"]]
        self._detectors = {s: self._detector() for s in self.keys}
        for series, saved in state["detectors"].items():
            if series in self._detectors:
                self._detectors[series].load_state_dict(saved)


def _check(window: Any, k: Any, sustain: Any, min_std: Any) -> None:
    if not isinstance(window, int) or window < 2:
        raise ValueError(f"window must be an integer >= 2 (points), got {window!r}")
    if not k > 0:
        raise ValueError(f"k must be positive (standard deviations), got {k!r}")
    if not isinstance(sustain, int) or sustain < 1:
        raise ValueError(f"sustain must be a positive integer (points), got {sustain!r}")
    if not min_std > 0:
        raise ValueError(f"min_std must be positive, got {min_std!r}")
