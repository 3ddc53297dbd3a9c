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
from concurrent.futures import Future, ThreadPoolExecutor

from emergence.log import get_logger

log = get_logger("emergence.metrics")

THREAD_NAME = "emergence-metric-rows"


class RowWriter:
    """Runs row jobs inline, or in order on one background thread; see the module docstring."""

    def __init__(self, background: bool = False) -> None:
        self.background = background
        self._executor: ThreadPoolExecutor | None = None
        self._last: Future | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Run `job` (a row: fetch, write, flush) now, or queue it behind the earlier ones."""
        if not self.background:
            job()
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        self._last = self._executor.submit(_logged, job)

    def wait(self) -> None:
        """Block until every queued row is written."""
        if self._last is not None:
            self._last.result()
            self._last = None

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        self.wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _logged(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception as err:  # a row must never end the run from another thread
        log.error("metrics: a background row failed: %s", err)
