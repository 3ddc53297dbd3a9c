"""What to keep: small preservation policies the `CheckpointManager` applies after each durable save.

The shape is Orbax's (`preservation_policy.py`: `LatestN`, `BestN`): a policy sees the
files it governs and says which to keep; the manager deletes the rest. Each policy
governs one kind of file (`kind`): `KeepLastN` the periodic ones, `KeepBestN` the best
ones. Kinds no policy governs are all kept, and `emergency` and `final` files are never
offered to a policy at all: they are never rotated.

The manager offers only files that verify (see `rotation.py`): a damaged file takes no
slot, so it never pushes a good one out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from emergence.checkpoint.store import CheckpointRef

ROTATED_KINDS = ("periodic", "best")


@dataclass(frozen=True)
class Candidate:
    """A valid checkpoint file a keep policy may rank: its ref and the metrics its manifest records."""

    ref: CheckpointRef
    metrics: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class KeepPolicy(Protocol):
    """Says which of the files of its `kind` (valid ones, oldest first) to keep."""

    kind: str

    def keep(self, candidates: Sequence[Candidate]) -> list[Candidate]: ...


def _check_count(name: str, n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")


class KeepLastN:
    """Keeps the newest `n` periodic checkpoints (by step)."""

    kind = "periodic"

    def __init__(self, n: int) -> None:
        _check_count("KeepLastN: n (keep_last)", n)
        self.n = n

    def keep(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        return sorted(candidates, key=lambda c: c.ref.order)[-self.n :]

    def __repr__(self) -> str:
        return f"KeepLastN({self.n})"


class KeepBestN:
    """Keeps the `n` best checkpoints of `kind` (default: the best ones) by `monitor`, lowest or highest per `mode`.

    A file's value is the `monitor` entry of the metrics its manifest records. On a tie
    the older file stays; NaN is never among the best; a file without the value ranks last.
    """

    def __init__(self, monitor: str, mode: Literal["min", "max"] = "min", n: int = 1, kind: str = "best") -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"KeepBestN: monitor must be a metric name, got {monitor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"KeepBestN: mode must be 'min' or 'max', got {mode!r}")
        _check_count("KeepBestN: n (save_top_k)", n)
        if kind not in ROTATED_KINDS:
            raise ValueError(f"KeepBestN: kind must be one of {', '.join(ROTATED_KINDS)}, got {kind!r}")
        self.monitor, self.mode, self.n, self.kind = monitor, mode, n, kind

    def keep(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        return sorted(candidates, key=self._rank)[: self.n]

    def admits(self, value: float, candidates: Sequence[Candidate]) -> bool:
        """Would a new file with `value` be kept among `candidates`? (Strictly better than the worst kept when full.)"""
        if not _finite(value):
            return False
        kept = self.keep(candidates)
        if len(kept) < self.n:
            return True
        worst = self._score(kept[-1])
        return (value if self.mode == "min" else -value) < worst

    def _score(self, candidate: Candidate) -> float:
        value = candidate.metrics.get(self.monitor)
        if not _finite(value):
            return math.inf
        return float(value) if self.mode == "min" else -float(value)

    def _rank(self, candidate: Candidate) -> tuple[float, int]:
        return self._score(candidate), candidate.ref.step

    def __repr__(self) -> str:
        return f"KeepBestN({self.monitor!r}, mode={self.mode!r}, n={self.n})"


def _finite(value: object) -> bool:
    """A number that can rank: not NaN (infinities rank like any value)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def check_keep_policies(keep: Sequence[KeepPolicy], kinds: Sequence[str] = ROTATED_KINDS) -> tuple[KeepPolicy, ...]:
    """`keep` as a tuple, or a one-line error: a policy for a kind that is never rotated, or two for one kind."""
    governed = [policy.kind for policy in keep]
    if any(kind not in kinds for kind in governed):
        raise ValueError(f"keep policies rotate only {' and '.join(kinds)} files; got kinds {governed}")
    if len(set(governed)) != len(governed):
        raise ValueError(f"one keep policy per kind: got {list(keep)}")
    return tuple(keep)
