"""JobThread: one background thread that runs jobs in the order they came, started on the first one.

The checkpoint writer and the metric row writer each own one. Once the interpreter is
exiting no thread may start or take work ("cannot schedule new futures after
interpreter shutdown"): an emergency save from an exit handler then runs its job on the
calling thread, after the jobs queued before it (the exiting interpreter lets the thread
finish them), and gets its outcome in a finished `Future` just the same.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any


class JobThread:
    """Jobs run one at a time, in order, on a thread named `name`; see the module docstring."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._last: Future | None = None

    def submit(self, job: Callable[[], Any]) -> Future:
        """Queue `job` behind the earlier ones (or run it here while the interpreter exits); its future."""
        try:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
            self._last = self._executor.submit(job)
        except RuntimeError:  # the interpreter is exiting: the thread finishes what it holds, takes nothing more
            self.drain()
            self._last = _run_here(job)
        return self._last

    def drain(self) -> None:
        """Block until every queued job has run (their errors stay in their futures)."""
        if self._last is not None:
            wait([self._last])

    def close(self) -> None:
        """Stop the thread once the queued jobs have run."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = self._last = None


def _run_here(job: Callable[[], Any]) -> Future:
    """`job` run on the calling thread, its outcome in a finished Future."""
    future: Future = Future()
    try:
        future.set_result(job())
    except Exception as err:
        future.set_exception(err)
    return future
