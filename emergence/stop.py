"""StopReason: why a run stopped, typed: a kind the code decides on, and a detail people read.

Kinds (`KINDS`):

- clean stops, which end the run with a `final` checkpoint and exit code 0: `max_steps`,
  `max_epochs` (the training data ended: `fit(train_data=...)`), `time_budget`,
  `early_stopping`, `non_finite` (a divergence guard gave up after restoring the last
  good state) and `user` (anything a caller asks for by name);
- interruptions, which end it with an `emergency` checkpoint: `signal` (detail: the
  signal's name; exit code 128 + signum), `exception` (detail: the exception's type;
  exit code 1) and `atexit` (the interpreter exits while `fit()` runs in a thread; 1).

Code decides on `reason.kind` (or `reason.clean`, `reason.end_kind`, `reason.exit_code`),
never on the text. The text, `str(reason)`, is the form manifests, `latest.json`,
summaries and logs have always shown (`max_steps`, `signal:SIGTERM`,
`exception:RuntimeError`; a `user` reason shows its detail alone), and a reason compares
equal to it, so `trainer.stop_reason == "max_steps"` reads as it says. `parse` turns that
text back into a reason: processes agree on a stop by exchanging it (`parallel/stops.py`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Literal

StopKind = Literal[
    "max_steps", "max_epochs", "time_budget", "early_stopping", "non_finite", "user", "signal", "exception", "atexit"
]
CLEAN: frozenset[str] = frozenset({"max_steps", "max_epochs", "time_budget", "early_stopping", "non_finite", "user"})
INTERRUPTED: frozenset[str] = frozenset({"signal", "exception", "atexit"})
KINDS: frozenset[str] = CLEAN | INTERRUPTED


@dataclass(frozen=True, eq=False)
class StopReason:
    """Why a run stopped: `kind` (one of `KINDS`) and a free-text `detail` (a signal's or exception's name)."""

    kind: StopKind
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown stop kind {self.kind!r}; use one of {', '.join(sorted(KINDS))}")
        if not isinstance(self.detail, str):
            raise ValueError(f"a stop reason's detail is text, got {self.detail!r}")
        if self.kind == "signal" and self.detail not in signal.Signals.__members__:
            raise ValueError(f"a signal stop needs a signal name as its detail (SIGTERM, ...), got {self.detail!r}")

    @classmethod
    def of_signal(cls, signum: int) -> StopReason:
        """The stop for signal number `signum`."""
        return cls("signal", signal.Signals(signum).name)

    @classmethod
    def of_exception(cls, exception: BaseException) -> StopReason:
        """The stop for an exception that ended `fit()`."""
        return cls("exception", type(exception).__name__)

    @classmethod
    def parse(cls, text: str) -> StopReason:
        """The reason `str(reason)` showed: `kind` or `kind:detail` for a known kind, else a `user` reason."""
        kind, _, detail = text.partition(":")
        if kind in KINDS and kind != "user":
            try:
                return cls(kind, detail)
            except ValueError:
                pass
        return cls("user", text)

    @property
    def clean(self) -> bool:
        """True for a stop that ends the run normally (it gets a `final` checkpoint)."""
        return self.kind in CLEAN

    @property
    def end_kind(self) -> Literal["final", "emergency"]:
        """The kind of the checkpoint that ends a run stopped for this reason."""
        return "final" if self.clean else "emergency"

    @property
    def exit_code(self) -> int:
        """The process's exit code for this stop: 0 clean, 128 + signum for a signal, 1 otherwise."""
        if self.kind == "signal":
            return 128 + int(signal.Signals[self.detail])
        return 0 if self.clean else 1

    @property
    def signal(self) -> signal.Signals | None:
        """The signal of a `signal` stop, else None."""
        return signal.Signals[self.detail] if self.kind == "signal" else None

    def __str__(self) -> str:
        if self.kind == "user":
            return self.detail or "user"
        return f"{self.kind}:{self.detail}" if self.detail else self.kind

    def __repr__(self) -> str:
        return f"StopReason({self.kind!r}, {self.detail!r})" if self.detail else f"StopReason({self.kind!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StopReason):
            return (self.kind, self.detail) == (other.kind, other.detail)
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


def as_stop_reason(reason: StopReason | str) -> StopReason:
    """`reason` as a `StopReason`: a string names a `user` stop (`trainer.request_stop("enough")`)."""
    if isinstance(reason, StopReason):
        return reason
    if isinstance(reason, str) and reason:
        return StopReason("user", reason)
    raise ValueError(f"a stop reason is a StopReason or a non-empty string, got {reason!r}")
