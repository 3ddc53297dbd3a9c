"""RateLimitFilter: a `logging.Filter` that lets through only some records of each kind.

The seed's lesson: 38 log lines a step saturated I/O. A warning that fires every step
(a NaN metric, a sink that cannot write) should reach the log now and then, saying how
many of its kind were held back, not thousands of times. Records are grouped by a key
(by default the logger name and the message *template*, so `"loss is %s at step %d"`
is one kind whatever its arguments) and each kind is limited on its own:

- `every_n=100`: the 1st, 101st, 201st ... record of a kind;
- `every_seconds=60`: at most one record of a kind per minute;
- `sample=0.01`: each record with probability 1 % (the seed's "warnings at 1 %");
- `burst=10` with any of them: the first 10 records of a kind pass; the limit applies to the rest.

A record that passes after others of its kind were held back says so: its message ends
with `(+N similar suppressed)`. `report_suppressed()` logs a summary line for the kinds
still holding some back (call it at the end of a run; `LogThrottleCallback` does).

The project's own loggers (`emergence.log.get_logger`) all share one keyed by
`exact_message`: an identical line passes 10 times, then once a minute (a one-off
message with a new path or step is never held back, however often its template is used).
Add one to your own logger (records created on that logger are limited; a logger's filters
do not see its children's records):

    logging.getLogger("emergence").addFilter(RateLimitFilter(every_seconds=30))

or to a handler, to limit everything that handler prints.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

_SUMMARY_FLAG = "_emergence_rate_limit_summary"


def message_template(record: logging.LogRecord) -> Hashable:
    """The default key: the logger's name and the unformatted message."""
    return record.name, str(record.msg)


def exact_message(record: logging.LogRecord) -> Hashable:
    """A stricter key: the logger's name, the level and the formatted message (only identical lines are one kind)."""
    try:
        return record.name, record.levelno, record.getMessage()
    except Exception:  # a malformed record: logging reports it when a handler formats it
        return record.name, record.levelno, str(record.msg)


@dataclass
class _Kind:
    seen: int = 0
    passed_at: float | None = None
    held: int = 0
    last_held: logging.LogRecord | None = None


class RateLimitFilter(logging.Filter):
    """Passes some records of each kind (see the module docstring); give exactly one limit.

    Args:
        every_n: pass the first record of a kind and then every n-th.
        every_seconds: pass a record of a kind only if the last one passed this long ago.
        sample: pass each record with this probability, in (0, 1].
        key: `key(record) -> hashable` naming a record's kind (default: logger name and template).
        clock: monotonic seconds (inject a fake one in tests).
        seed: seeds the sampling, so a run's log is reproducible.
        burst: this many records of each kind pass before the limit applies.
    """

    def __init__(
        self,
        every_n: int | None = None,
        every_seconds: float | None = None,
        sample: float | None = None,
        key: Callable[[logging.LogRecord], Hashable] = message_template,
        *,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = 0,
        burst: int = 0,
    ) -> None:
        super().__init__()
        _check(every_n, every_seconds, sample)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            raise ValueError(f"burst must be a non-negative integer, got {burst!r}")
        self.burst = burst
        self.every_n = every_n
        self.every_seconds = every_seconds
        self.sample = sample
        self.key = key
        self.clock = clock
        self._random = random.Random(seed)
        self._kinds: dict[Hashable, _Kind] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY_FLAG, False):
            return True
        with self._lock:
            kind = self._kinds.setdefault(self.key(record), _Kind())
            kind.seen += 1
            now = self.clock()
            if not self._passes(kind, now):
                kind.held += 1
                kind.last_held = record
                return False
            held, kind.held, kind.last_held, kind.passed_at = kind.held, 0, None, now
        if held:
            _append_to_message(record, f" (+{held} similar suppressed)")
        return True

    def _passes(self, kind: _Kind, now: float) -> bool:
        if kind.seen <= self.burst:
            return True
        if self.every_n is not None:
            return (kind.seen - self.burst - 1) % self.every_n == 0
        if self.every_seconds is not None:
            return kind.passed_at is None or now - kind.passed_at >= self.every_seconds
        return self._random.random() < self.sample

    def suppressed(self) -> int:
        """Records held back and not yet mentioned by a passing record or a summary."""
        with self._lock:
            return sum(kind.held for kind in self._kinds.values())

    def report_suppressed(self) -> None:
        """Log one summary line per kind that still holds records back, on that kind's logger and level."""
        with self._lock:
            pending = [(kind.held, kind.last_held) for kind in self._kinds.values() if kind.held]
            for kind in self._kinds.values():
                kind.held, kind.last_held = 0, None
        for held, record in pending:
            logging.getLogger(record.name).log(
                record.levelno,
                "%d more message(s) like %r were suppressed",
                held,
                str(record.msg),
                extra={_SUMMARY_FLAG: True},
            )


def _append_to_message(record: logging.LogRecord, suffix: str) -> None:
    """Format the record's message now and add `suffix` (a record whose arguments do not fit is left alone)."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: logging reports it when a handler formats it
        return
    record.msg, record.args = message + suffix, None


def _check(every_n: int | None, every_seconds: float | None, sample: float | None) -> None:
    given = [
        name
        for name, value in (("every_n", every_n), ("every_seconds", every_seconds), ("sample", sample))
        if value is not None
    ]
    if len(given) != 1:
        raise ValueError(f"RateLimitFilter takes exactly one of every_n, every_seconds, sample; got {given or 'none'}")
    if every_n is not None and (not isinstance(every_n, int) or every_n < 1):
        raise ValueError(f"every_n must be a positive integer, got {every_n!r}")
    if every_seconds is not None and not every_seconds > 0:
        raise ValueError(f"every_seconds must be positive, got {every_seconds!r}")
    if sample is not None and not 0 < sample <= 1:
        raise ValueError(f"sample must be a probability in (0, 1], got {sample!r}")
