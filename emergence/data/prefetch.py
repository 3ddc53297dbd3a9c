"""The next K batches read, stacked and put on the device on a background thread while the current call runs.

`Prefetcher(source, steps_per_call=K)` is an iterator of `Prepared` groups: K batches
from a `BatchSource`, checked against the first batch (`BatchSpec`), stacked on the
host (`stack`, one copy), placed on the device in one `device_put` and waited for, all
on one worker thread. The loop thread only takes ready groups off a bounded queue
(`depth` groups ahead), so while the device runs call i the host prepares call i+1.

Each group carries the source's position after its batches: the loop saves the
position of the last group it consumed, never the worker's (which runs ahead), so a
checkpoint resumes exactly at the next unconsumed batch. An exception on the worker
(a bad batch, a pipeline error) is raised on the loop thread at the next `next()`.
`close()` stops the worker and joins it; the groups it prepared are dropped.

`host_seconds` (worker time preparing groups) and `wait_seconds` (loop time blocked
on the queue after the first group) give the share of host time hidden:
`hidden_share()`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import jax

from emergence.data.placement import BatchPlacement
from emergence.data.source import BatchSource, Position
from emergence.data.stacking import BatchSpec, host_arrays, stack
from emergence.log import get_logger

POLL_SECONDS = 0.05
CLOSE_SECONDS = 30.0

log = get_logger("emergence.data")


@dataclass(frozen=True)
class Prepared:
    """One call's data on the device: `batch` (stacked along a leading axis of `steps` when steps > 1)."""

    batch: Any
    steps: int
    position: Position


@dataclass(frozen=True)
class _Failed:
    error: BaseException


@dataclass(frozen=True)
class _Ended:
    position: Position  # the source's, once it had nothing more to give: past the last epoch


class Prefetcher:
    """Groups of `steps_per_call` batches from `source`, prepared `depth` groups ahead on a worker thread.

    Args:
        source: where batches come from (restore its position before the first `next()`).
        steps_per_call: batches per group (the K of a fused call); the last group may be
            shorter when the data or `max_batches` ends first.
        max_batches: read no more than this many batches (the steps left to `max_steps`).
        placement: how groups reach the device (default: the default device).
        depth: groups prepared ahead (the queue's bound).
    """

    def __init__(
        self,
        source: BatchSource,
        steps_per_call: int = 1,
        *,
        max_batches: int | None = None,
        placement: BatchPlacement | None = None,
        depth: int = 2,
    ) -> None:
        if steps_per_call < 1 or depth < 1:
            raise ValueError(f"steps_per_call and depth must be positive, got {steps_per_call} and {depth}")
        self.source = source
        self.steps_per_call = steps_per_call
        self.placement = placement or BatchPlacement()
        self.spec = BatchSpec(source.name)
        self.position: Position = source.position()
        self.host_seconds = 0.0
        self.wait_seconds = 0.0
        self.groups = 0
        self._left = max_batches
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="emergence-prefetch", daemon=True)
        self._done = False

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Prepared:
        """The next group on the device; its position becomes `self.position` (what a checkpoint saves now)."""
        if self._done:
            raise StopIteration
        if self._thread.ident is None and not self._stop.is_set():  # not started yet
            self._thread.start()
        started = time.perf_counter()
        item = self._queue.get()
        if self.groups:  # the first group's wait is the pipeline's start, hidden by nothing
            self.wait_seconds += time.perf_counter() - started
        if isinstance(item, (_Ended, _Failed)):
            self._done = True
            self.close()
            if isinstance(item, _Failed):
                raise item.error
            self.position = item.position
            raise StopIteration
        self.groups += 1
        self.position = item.position
        return item

    def hidden_share(self) -> float | None:
        """The share of the worker's host time the loop did not wait for (1.0: all hidden), after two groups."""
        if self.groups < 2 or self.host_seconds <= 0:
            return None
        return max(0.0, 1.0 - self.wait_seconds / self.host_seconds)

    def close(self) -> None:
        """Stop the worker and wait for it (a pipeline stuck in a read is left behind after `CLOSE_SECONDS`,
        with a warning); prepared groups are dropped, and `next()` ends. Safe to call twice."""
        self._done = True
        self._stop.set()
        give_up = time.monotonic() + CLOSE_SECONDS
        while self._thread.is_alive() and time.monotonic() < give_up:
            self._drain()
            self._thread.join(POLL_SECONDS)
        self._drain()
        if self._thread.is_alive():
            log.warning(
                "the prefetch thread is still inside a read of %s after %.0f s; left behind",
                self.source.name,
                CLOSE_SECONDS,
            )

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                want = self.steps_per_call if self._left is None else min(self.steps_per_call, self._left)
                group = self._prepare(want) if want else None
                if group is None or not self._put(group):
                    break
                if self._left is not None:
                    self._left -= group.steps
                if group.steps < want:  # the data ended inside this group
                    break
            self._put(_Ended(self.source.position()))
        except BaseException as err:  # surfaced on the loop thread by __next__
            self._put(_Failed(err))

    def _prepare(self, want: int) -> Prepared | None:
        started = time.perf_counter()
        batches = []
        for batch in self.source:
            batch = host_arrays(batch, self.source.name)
            self.spec.check(batch)
            batches.append(batch)
            if len(batches) == want:
                break
        if not batches:
            return None
        stacked = len(batches) > 1
        placed = self.placement.place(stack(batches) if stacked else batches[0], stacked)
        jax.block_until_ready(placed)
        group = Prepared(placed, len(batches), self.source.position())
        self.host_seconds += time.perf_counter() - started
        return group

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False
