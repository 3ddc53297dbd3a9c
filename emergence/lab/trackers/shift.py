"""ShiftDetector: finds sustained shifts of one series beyond k standard deviations of its recent window.

The definition, exactly (all counts are recorded points of the series, not train steps):

- The *reference window* of point i is the `window` points just before it, provided
  they all lie at or after the current *regime start* (initially the first point);
  with fewer, point i is not tested (warm-up).
- Point i is *beyond* when `|x_i - mean| > k * max(std, min_std)`, with the mean and
  the population standard deviation (ddof 0) of its reference window; its side is
  the sign of `x_i - mean`.
- A *run* starts at a beyond point (its onset). Every following point is tested
  against the onset's reference window (frozen, so the shifted values never dilute
  it); the run goes on while each one is beyond on the same side and ends at the first
  that is not (that point may start a new run against its own window).
- A run that reaches `sustain` points is *sustained*: an event, at the onset, detected
  at the `sustain`-th point. The regime start moves to the onset: the next event of
  this series needs a full window of the new level first.

The detector keeps three integers; the values live in the caller's history, so its
state is exact through JSON and a resumed run detects exactly what a straight run does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Shift:
    """A sustained shift, by point index: where it began, its side and size."""

    onset: int
    direction: str  # "up" or "down"
    before: float  # mean of the reference window
    after: float  # mean of the sustained run
    z: float  # (after - before) / max(std, min_std) of the reference window


class ShiftDetector:
    """The run state of one series; feed it the series' values after each new point."""

    def __init__(self, window: int, k: float, sustain: int, min_std: float) -> None:
        self.window, self.k, self.sustain, self.min_std = window, k, sustain, min_std
        self.regime_start = 0
        self.run_start: int | None = None
        self.run_sign = 0

    def observe(self, values: list[float]) -> Shift | None:
        """Test the newest of `values` (the whole series so far); a `Shift` when a run just became sustained."""
        newest = len(values) - 1
        if self.run_start is not None and self._side(values, self.run_start, values[newest]) != self.run_sign:
            self.run_start, self.run_sign = None, 0
        if self.run_start is None:
            sign = self._side(values, newest, values[newest])
            if sign == 0:
                return None
            self.run_start, self.run_sign = newest, sign
        if newest - self.run_start + 1 < self.sustain:
            return None
        return self._close_run(values, newest)

    def _close_run(self, values: list[float], newest: int) -> Shift:
        onset = self.run_start
        mean, scale = self._reference(values, onset)
        after = float(np.mean(values[onset : newest + 1]))
        shift = Shift(
            onset=onset,
            direction="up" if self.run_sign > 0 else "down",
            before=mean,
            after=after,
            z=(after - mean) / scale,
        )
        self.regime_start, self.run_start, self.run_sign = onset, None, 0
        return shift

    def _reference(self, values: list[float], index: int) -> tuple[float, float]:
        reference = np.asarray(values[index - self.window : index], dtype=np.float64)
        return float(reference.mean()), max(float(reference.std()), self.min_std)

    def _side(self, values: list[float], index: int, value: float) -> int:
        """+1 / -1 when `value` is beyond point `index`'s reference window, 0 when not (or no full window)."""
        if index - self.window < self.regime_start:
            return 0
        mean, scale = self._reference(values, index)
        if abs(value - mean) <= self.k * scale:
            return 0
        return 1 if value > mean else -1

    def state_dict(self) -> dict[str, Any]:
        return {"regime_start": self.regime_start, "run_start": self.run_start, "run_sign": self.run_sign}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.regime_start = int(state["regime_start"])
        self.run_start = None if state["run_start"] is None else int(state["run_start"])
        self.run_sign = int(state["run_sign"])
