"""When to save: small save-decision policies the `CheckpointManager` asks at each call boundary.

The shape is Orbax's (`save_decision_policy.py`: `FixedIntervalPolicy`,
`ContinuousCheckpointingPolicy`, `AnySavePolicy`, facts in one `DecisionContext`), on
our own step rule: every step and seconds interval is an `emergence.schedule.Every`, so
"every n steps" means here exactly what it means for logging, trackers and evaluation
(due at the first call boundary at or past each multiple of n).

A policy answers `should_save(context)`; the manager tells it `saved(context)` after
each periodic save, and `start(context)` when counting starts (a fresh run or a
resume). `next_step` says how long the loop may skip asking: no save is due before that
step (0 for a policy that must look at every call: the clock, a write in flight).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from emergence.schedule import Every, check_interval


@dataclass(frozen=True)
class SaveContext:
    """The facts a policy decides on: the step reached, the time (monotonic seconds), the metrics known.

    `saving` is True while a background write is still in flight.
    """

    step: int
    time: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    saving: bool = False


@runtime_checkable
class SavePolicy(Protocol):
    """Decides whether a periodic checkpoint is due."""

    def should_save(self, context: SaveContext) -> bool: ...

    def saved(self, context: SaveContext) -> None: ...

    def start(self, context: SaveContext) -> None: ...

    @property
    def next_step(self) -> float: ...


class _Scheduled:
    """A policy that is one `Every`: due when the schedule says so; a save (or the start) resets it."""

    def __init__(self, steps: int | None, seconds: float | None, owner: str) -> None:
        self._now = 0.0
        self.schedule = Every(steps, seconds, clock=lambda: self._now, owner=owner)

    def should_save(self, context: SaveContext) -> bool:
        self._now = context.time
        return self.schedule.due(context.step)

    def saved(self, context: SaveContext) -> None:
        self._now = context.time
        self.schedule.done(context.step)

    start = saved

    @property
    def next_step(self) -> float:
        return self.schedule.next_step if self.schedule.seconds is None else 0


class EveryNSteps(_Scheduled):
    """Due at the first call boundary at or past each multiple of `n` steps after the last save."""

    def __init__(self, n: int) -> None:
        super().__init__(n, None, owner="EveryNSteps")
        self.n = n

    def __repr__(self) -> str:
        return f"EveryNSteps({self.n})"


class EveryNSeconds(_Scheduled):
    """Due once `seconds` have passed (by the context's clock) since the last save or the start."""

    def __init__(self, seconds: float) -> None:
        super().__init__(None, seconds, owner="EveryNSeconds")
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"EveryNSeconds({self.seconds})"


class Continuous:
    """Due as soon as the previous save is durable and `min_interval_s` after it started (Orbax's continuous policy).

    A SIGKILL then loses about one to two saves' duration of work instead of up to one
    interval, for a disk and a core kept busy writing. The first save after the start
    is due at the first call that trained a step, whatever `min_interval_s`.
    """

    def __init__(self, min_interval_s: float = 0.0) -> None:
        if isinstance(min_interval_s, bool) or not isinstance(min_interval_s, (int, float)) or not min_interval_s >= 0:
            raise ValueError(f"min_interval_s must be zero or positive seconds, got {min_interval_s!r}")
        self.min_interval_s = min_interval_s
        self._last_step = 0
        self._started = -math.inf

    def should_save(self, context: SaveContext) -> bool:
        return (
            not context.saving
            and context.step > self._last_step
            and context.time - self._started >= self.min_interval_s
        )

    def saved(self, context: SaveContext) -> None:
        self._last_step, self._started = context.step, context.time

    def start(self, context: SaveContext) -> None:
        self._last_step, self._started = context.step, -math.inf

    @property
    def next_step(self) -> float:
        return 0

    def __repr__(self) -> str:
        return f"Continuous(min_interval_s={self.min_interval_s})"


class AnyOf:
    """Due when any of `policies` is; a save resets them all (as one `Every` with steps and seconds does)."""

    def __init__(self, *policies: SavePolicy) -> None:
        if not policies:
            raise ValueError("AnyOf needs at least one save policy")
        self.policies = policies

    def should_save(self, context: SaveContext) -> bool:
        return any(policy.should_save(context) for policy in self.policies)

    def saved(self, context: SaveContext) -> None:
        for policy in self.policies:
            policy.saved(context)

    def start(self, context: SaveContext) -> None:
        for policy in self.policies:
            policy.start(context)

    @property
    def next_step(self) -> float:
        return min(policy.next_step for policy in self.policies)

    def __repr__(self) -> str:
        return f"AnyOf({', '.join(map(repr, self.policies))})"


class Never:
    """Never due: the manager saves only when asked (`save(...)`); the default policy."""

    def should_save(self, context: SaveContext) -> bool:
        return False

    def saved(self, context: SaveContext) -> None:
        pass

    start = saved

    @property
    def next_step(self) -> float:
        return math.inf

    def __repr__(self) -> str:
        return "Never()"


def every(steps: int | None = None, seconds: float | None = None) -> SavePolicy:
    """The policy for Lightning-shaped `every_n_steps` / `every_n_seconds` arguments (either, both or neither)."""
    check_interval("every_n_steps", steps, integer=True)
    check_interval("every_n_seconds", seconds, integer=False)
    chosen = [p for p in (steps and EveryNSteps(steps), seconds and EveryNSeconds(seconds)) if p]
    if not chosen:
        return Never()
    return chosen[0] if len(chosen) == 1 else AnyOf(*chosen)
