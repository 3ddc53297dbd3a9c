"""RowWriter: where metric rows are fetched and written: inline, or on one background thread (CLU's `AsyncWriter`).

A row costs a device→host fetch (which waits for the calls queued ahead of it), a CSV
line, a TensorBoard event and a flush; on a fast loop at a hundred rows a second that is
most of what logging costs. With `background=True` each row is one job on a single
writer thread, in order: the loop hands over the row's device arrays and goes on. `wait()`
drains the jobs (the logger waits before `on_fit_end` flushes and before it closes its
sinks), so every row is on disk when `fit()` returns. A job that fails is logged, never
raised on the loop.
"""

from __future__ import annotations

from collections.abc import Callable

from emergence.job_thread import JobThread
from emergence.log import get_logger

log = get_logger("emergence.metrics")

THREAD_NAME = "emergence-metric-rows"


class RowWriter:
    """Runs row jobs inline, or in order on one background thread; see the module docstring."""

    def __init__(self, background: bool = False) -> None:
        self.background = background
        self._thread = JobThread(THREAD_NAME)

    def submit(self, job: Callable[[], None]) -> None:
        """Run `job` (a row: fetch, write, flush) now, or queue it behind the earlier ones."""
        if not self.background:
            job()
            return
        self._thread.submit(lambda: _logged(job))

    def wait(self) -> None:
        """Block until every queued row is written."""
        self._thread.drain()

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        self.wait()
        self._thread.close()


def _logged(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception as err:  # a row must never end the run from another thread
        log.error("metrics: a background row failed: %s", err)
