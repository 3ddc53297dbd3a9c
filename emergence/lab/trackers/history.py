"""SeriesHistory: named scalar series sampled at training steps, exact through JSON.

The one store both trackers keep their time series in. Values are Python floats
(float64): `json.dumps` writes them with `repr`, which reads back to the same bits, so
a history saved in a checkpoint and loaded again is bitwise the one that was saved.
Non-finite values are not stored (strict JSON has no NaN): a series simply has no
point at that step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class SeriesHistory:
    """`{series name: (steps, values)}`, each series appended in increasing step order."""

    def __init__(self) -> None:
        self._steps: dict[str, list[int]] = {}
        self._values: dict[str, list[float]] = {}

    @property
    def names(self) -> list[str]:
        """The series that have at least one point, in the order they first appeared."""
        return list(self._steps)

    def append(self, name: str, step: int, value: Any) -> bool:
        """Add `value` at `step` to series `name`; False (nothing stored) when it is not finite."""
        value = float(value)
        if not math.isfinite(value):
            return False
        steps = self._steps.setdefault(name, [])
        if steps and step <= steps[-1]:
            raise ValueError(f"series {name!r} already has step {steps[-1]}; steps must increase (got {step})")
        steps.append(int(step))
        self._values.setdefault(name, []).append(value)
        return True

    def steps(self, name: str) -> np.ndarray:
        """The steps of series `name` (int64; empty when it has none)."""
        return np.asarray(self._steps.get(name, []), dtype=np.int64)

    def values(self, name: str) -> np.ndarray:
        """The values of series `name` (float64; empty when it has none)."""
        return np.asarray(self._values.get(name, []), dtype=np.float64)

    def value_list(self, name: str) -> list[float]:
        """The stored values of `name` themselves (read only; for incremental computations)."""
        return self._values.get(name, [])

    def state_dict(self) -> dict[str, Any]:
        """JSON-able copy: `{name: {"steps": [...], "values": [...]}}`."""
        return {name: {"steps": list(self._steps[name]), "values": list(self._values[name])} for name in self._steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the history with one from `state_dict()`."""
        self._steps, self._values = {}, {}
        for name, series in state.items():
            steps, values = [int(s) for s in series["steps"]], [float(v) for v in series["values"]]
            if len(steps) != len(values) or any(b <= a for a, b in zip(steps, steps[1:])):
                raise ValueError(
                    f"saved tracker series {name!r} is inconsistent (steps not increasing or "
                    f"lengths differ); the checkpoint's tracker state is damaged"
                )
            self._steps[name], self._values[name] = steps, values
