"""AsyncCheckpointWriter: one background thread that writes checkpoints, one at a time, in order.

The Trainer takes the state off the device on the main thread (the only part that has
to block: the next call donates the state) and hands the rest of a save (serialise,
hash, fsync, rename, point `latest.json` at it) to this writer as one job. At most one
job is in flight: a save that finds one pending waits for it first, so host memory
holds at most one extra copy of the state and files land in the order they were asked
for. The job's result or error stays with the writer until `collect()` hands it back on
the caller's thread: nothing here fires hooks or swallows errors.

Knows nothing of the Trainer or of the file format: a job is any callable.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from emergence.job_thread import JobThread

THREAD_NAME = "emergence-checkpoint-writer"


class AsyncCheckpointWriter:
    """Runs write jobs on one background thread, at most one at a time.

    Args:
        before_write: called on the writer thread before each job. A test seam: tests
            pass e.g. `threading.Event().wait` to hold a write back and see that
            training goes on meanwhile, without replacing what the write does.
    """

    def __init__(self, before_write: Callable[[], Any] | None = None) -> None:
        self.before_write = before_write
        self._thread = JobThread(THREAD_NAME)
        self._pending: Future | None = None

    @property
    def busy(self) -> bool:
        """A job was submitted and not yet collected (it may have finished)."""
        return self._pending is not None

    @property
    def ready(self) -> bool:
        """A submitted job has finished and waits to be collected (a non-blocking check)."""
        return self._pending is not None and self._pending.done()

    def submit(self, job: Callable[[], Any]) -> None:
        """Start `job` on the writer thread; `collect()` the previous one first.

        Once the interpreter is shutting down no thread may start: then the job runs
        right here (`JobThread`), and `collect()` hands back its outcome just the same.
        """
        if self._pending is not None:
            raise RuntimeError("a checkpoint write is still pending; collect() it before submitting another")
        self._pending = self._thread.submit(lambda: self._run(job))

    def _run(self, job: Callable[[], Any]) -> Any:
        if self.before_write is not None:
            self.before_write()
        return job()

    def collect(self) -> Any:
        """Wait for the pending job; return its result or raise its error (once: it is cleared either way)."""
        if self._pending is None:
            raise RuntimeError("no checkpoint write is pending")
        future, self._pending = self._pending, None
        return future.result()

    def close(self) -> None:
        """Stop the writer thread after the job in flight, if any, has run (its result is dropped)."""
        self._thread.close()
        self._pending = None


def writer_from(writer: bool | AsyncCheckpointWriter, name: str = "writer") -> AsyncCheckpointWriter | None:
    """The writer a `writer=` argument (called `name` in errors) asks for: new for True, none for False, a given one."""
    if isinstance(writer, AsyncCheckpointWriter):
        return writer
    if not isinstance(writer, bool):
        raise ValueError(f"{name} must be True, False or an AsyncCheckpointWriter, got {writer!r}")
    return AsyncCheckpointWriter() if writer else None
