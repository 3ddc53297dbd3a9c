"""What `fit(task, train_data=...)` adds to the loop: the next call's batches, and where the data stands.

A `TrainFeed` wraps the pieces for a loop: at `open(saved)` it restores the data
position a checkpoint kept (`state_dict()` of the run that wrote it) and starts the
`Prefetcher`; `next_call()` is the next group of batches on the device (None once the
data ended: `max_epochs` reached, or a finite pipeline exhausted); `state_dict()` is
the position after the last group the loop took, JSON for the checkpoint's manifest,
with the epoch counter. The loop never sees threads, iterators or positions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from emergence.data.placement import BatchPlacement
from emergence.data.prefetch import Prefetcher, Prepared
from emergence.data.source import BatchSource


class TrainFeed:
    """Prefetched groups of `steps_per_call` batches from `data`, with the position a checkpoint keeps.

    Args:
        data: any iterable of pytrees of arrays, or a Grain dataset or loader (see `BatchSource`).
        steps_per_call: batches per call (the K of a fused call).
        max_epochs: end the data after this many epochs (None: when the data ends).
        placement: where batches go (a mesh's `BatchPlacement` with `devices=`).
        depth: groups prepared ahead.
    """

    def __init__(
        self,
        data: Iterable[Any],
        *,
        steps_per_call: int = 1,
        max_epochs: int | None = None,
        placement: BatchPlacement | None = None,
        depth: int = 2,
    ) -> None:
        self.source = BatchSource(data, max_epochs=max_epochs)
        self.steps_per_call = steps_per_call
        self.placement = placement
        self.depth = depth
        self._prefetcher: Prefetcher | None = None

    def open(self, saved: dict[str, Any] | None = None, *, max_batches: int | None = None) -> None:
        """Restore the position `saved` (a `state_dict()`; None: the start) and start preparing batches."""
        if saved is not None:
            self.source.restore(saved["position"])
        self._prefetcher = Prefetcher(
            self.source,
            self.steps_per_call,
            max_batches=max_batches,
            placement=self.placement,
            depth=self.depth,
        )

    def next_call(self) -> Prepared | None:
        """The next call's batches on the device, or None when the data has ended."""
        return next(self._prefetcher, None)

    @property
    def epoch(self) -> int:
        """Epochs finished before the last batch the loop took (after the end: the epochs done)."""
        return int(self._position()["epoch"])

    def state_dict(self) -> dict[str, Any]:
        """The data position after the last call the loop took, as JSON: `{"position": ..., "epoch": ...}`."""
        position = self._position()
        return {"position": position, "epoch": position["epoch"]}

    def close(self) -> None:
        """Stop the worker thread (idempotent)."""
        if self._prefetcher is not None:
            self._prefetcher.close()

    def _position(self) -> dict[str, Any]:
        return self._prefetcher.position if self._prefetcher is not None else self.source.position()
