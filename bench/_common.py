"""What every benchmark here shares: interleaved repetitions, medians, one table, a verdict.

Shared machines are noisy (two CPU cores, other jobs), so a benchmark never compares
a median taken now with one taken a minute later: it runs its cases round-robin
(A B C, B C A, C A B, ...), pairs each case with its baseline from the same round, and
reports the median of those per-round ratios. The noise it states is the median absolute
deviation of the same ratios; a target counts as missed only when the median ratio is
worse than the target by more than that noise (and by more than `MIN_TOLERANCE`).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import jax

from emergence import Callback, Trainer

MIN_TOLERANCE = 0.01
T = TypeVar("T")


class Lap(NamedTuple):
    """One timed stretch: wall seconds, and CPU seconds of all this process's threads.

    On a shared machine the CPU time is the steadier figure of work done (another job
    taking a core slows the wall clock, not the work); the wall clock is what a user waits.
    """

    wall: float
    cpu: float


class Stopwatch:
    """Starts a `Lap`: `lap = Stopwatch(); ...; lap.stop()`."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> Lap:
        return Lap(time.perf_counter() - self.wall, time.process_time() - self.cpu)


def machine() -> str:
    """One line naming the machine: CPU model, cores, accelerator, JAX version."""
    import jax

    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return f"{model}, {os.cpu_count()} cores, {jax.default_backend()} ({devices}), jax {jax.__version__}"


def interleaved(cases: dict[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Run each case once per round, rotating the order; each case returns what it measured (seconds, a `Lap`)."""
    names = list(cases)
    times: dict[str, list[T]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(cases[name]())
    return times


def paired(baseline: Callable[[], T], cases: dict[str, Callable[[], T]], rounds: int) -> dict[str, list[tuple[T, T]]]:
    """Per round, each case right next to its own run of the baseline: (baseline, case) pairs.

    Tighter than `interleaved` when the load changes from second to second: a case's
    ratio comes from two runs a moment apart. Which of the two runs first alternates by
    round, and the cases' order rotates.
    """
    names = list(cases)
    pairs: dict[str, list[tuple[T, T]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if r % 2:
                case = cases[name]()
                pairs[name].append((baseline(), case))
            else:
                base = baseline()
                pairs[name].append((base, cases[name]()))
    return pairs


@dataclass(frozen=True)
class Ratio:
    """A per-round paired ratio, summarised: its median and its noise (median absolute deviation)."""

    median: float
    noise: float

    @classmethod
    def of(cls, numerators: Sequence[float], denominators: Sequence[float]) -> "Ratio":
        ratios = [n / d for n, d in zip(numerators, denominators)]
        middle = statistics.median(ratios)
        return cls(middle, statistics.median(abs(r - middle) for r in ratios))

    def tolerance(self) -> float:
        return max(self.noise, MIN_TOLERANCE)

    def meets(self, target: float, higher_is_better: bool = True) -> bool:
        """True unless the median misses `target` by more than the noise."""
        if higher_is_better:
            return self.median >= target - self.tolerance()
        return self.median <= target + self.tolerance()

    def __str__(self) -> str:
        return f"{self.median:.3f} ± {self.noise:.3f}"


def verdict(ratio: Ratio | None, target: float | None, higher_is_better: bool = True) -> str:
    """`ok`, `MISS` or `-` (no target) for one table row."""
    if ratio is None or target is None:
        return "-"
    return "ok" if ratio.meets(target, higher_is_better) else "MISS"


def print_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], notes: Sequence[str] = ()
) -> None:
    """One Markdown table (pasteable into BENCHMARKS.md), preceded by a title and followed by notes."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    print(f"\n{title}\n")
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    for note in notes:
        print(f"\n{note}")
    sys.stdout.flush()


def exit_with(verdicts: Sequence[str]) -> None:
    """Exit 1 when any row missed its target, else 0."""
    missed = sum(v == "MISS" for v in verdicts)
    if missed:
        print(f"\n{missed} target(s) missed by more than the noise", file=sys.stderr)
    sys.exit(1 if missed else 0)


class Window(Callback):
    """Times the loop: opened by `opener` (last in the list) at `on_fit_start`, closed by it after the hooks of
    the call that reaches `max_steps` (else at `on_fit_end`, here, first), the state ready at both ends.

    So the end checkpoint a stop writes (once per run, like setup and restore) is outside the window.
    """

    def __init__(self) -> None:
        self.lap = Lap(0.0, 0.0)
        self.opener = _Opener(self)

    @property
    def seconds(self) -> float:
        return self.lap.wall

    def on_fit_end(self, trainer: Trainer, reason: str) -> None:
        if self.opener.open:
            self.opener.close(trainer)


class _Opener(Callback):
    def __init__(self, window: Window) -> None:
        self.window, self.watch, self.open = window, Stopwatch(), False

    def on_fit_start(self, trainer: Trainer) -> None:
        jax.block_until_ready(trainer.state)  # init_state's eager ops are not the loop's
        self.watch, self.open = Stopwatch(), True

    def next_due(self, trainer: Trainer) -> float:
        return float("inf") if trainer.max_steps is None else trainer.max_steps

    def on_train_call_end(self, trainer: Trainer, metrics: Any) -> None:
        if self.open and trainer.max_steps is not None and trainer.step >= trainer.max_steps:
            self.close(trainer)

    def close(self, trainer: Trainer) -> None:
        jax.block_until_ready(trainer.state)
        self.window.lap, self.open = self.watch.stop(), False
