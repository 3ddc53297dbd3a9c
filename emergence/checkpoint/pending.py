"""The saves of one `CheckpointManager` on their way to disk: the write in flight and the durable ones not yet reported.

This is the state machine that used to live in the Trainer (`_collect_pending_save`,
`_raise_pending_save_failure`, `_settle_pending_save_quietly`). At most one background
write is in flight (`AsyncCheckpointWriter`); a synchronous write runs here, inline.
Every write that becomes durable is queued as a `Durable` until `take()` hands the
queue over, oldest first; a background write's `CheckpointWriteError` is handed back
once, by `collect()`, on the caller's thread. Nothing here fires hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from emergence.checkpoint.async_writer import AsyncCheckpointWriter
from emergence.checkpoint.keep_policy import Candidate
from emergence.checkpoint.store import CheckpointRef
from emergence.errors import CheckpointWriteError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")


@dataclass(frozen=True)
class Durable:
    """A save that is durable on disk: its ref (with checksum) and the seconds from snapshot to durable file."""

    ref: CheckpointRef
    seconds: float


Written = tuple[Durable, str]
"""What a write job returns: the durable save and the key of what it holds (for the linked-final rule)."""


class PendingSaves:
    """At most one background write in flight, and the durable saves not yet taken."""

    def __init__(self, writer: AsyncCheckpointWriter | None) -> None:
        self.writer = writer
        self.in_flight: Candidate | None = None
        self.last_written: Written | None = None
        self._durable: list[Durable] = []

    @property
    def can_write_in_background(self) -> bool:
        return self.writer is not None

    @property
    def saving(self) -> bool:
        """A background write is in flight (submitted and not finished)."""
        return self.writer is not None and self.writer.busy and not self.writer.ready

    def submit(self, job: Callable[[], Written], in_flight: Candidate) -> None:
        """Start `job` on the writer thread; `collect()` the previous write first."""
        self.in_flight = in_flight
        self.writer.submit(job)

    def run(self, job: Callable[[], Written]) -> CheckpointRef:
        """Run `job` here; the durable ref (its failure is raised as it comes)."""
        return self._record(job())

    def collect(self) -> CheckpointWriteError | None:
        """Wait for the write in flight, if any, and queue it; return its failure (once)."""
        if self.writer is None or not self.writer.busy:
            return None
        self.in_flight = None
        try:
            written = self.writer.collect()
        except CheckpointWriteError as err:
            return err
        self._record(written)
        return None

    def take(self) -> list[Durable]:
        """The durable saves not taken yet, oldest first; a finished background write is collected first (no wait)."""
        if self.writer is not None and self.writer.ready:
            failed = self.collect()
            if failed is not None:
                raise failed
        taken, self._durable = self._durable, []
        return taken

    def settle(self) -> BaseException | None:
        """Wait for the write in flight while another exception unwinds: log its failure and return it, never raise."""
        try:
            failed = self.collect()
        except Exception as err:  # a bug in the write: the exception already unwinding wins
            failed = err
        if failed is not None:
            log.error("a background checkpoint write failed too: %s", failed)
        return failed

    def close(self) -> None:
        """Settle the write in flight and stop the writer thread."""
        self.settle()
        if self.writer is not None:
            self.writer.close()

    def _record(self, written: Written) -> CheckpointRef:
        self.last_written = written
        self._durable.append(written[0])
        return written[0].ref
