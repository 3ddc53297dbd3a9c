"""Batches from the host with a position a checkpoint can hold: any iterable of pytrees of arrays, or Grain.

`BatchSource(data)` reads one batch at a time from what the user brought:

- a Grain `MapDataset`: each epoch is one pass, reshuffled per epoch the way Grain's
  `repeat()` reseeds (epoch e reads `ds.repeat()[e*n:(e+1)*n]`); its iterator's
  `get_state()` is the position, so resume is O(1);
- a Grain `IterDataset` or `DataLoader`, or anything whose iterator has
  `get_state()`/`set_state()`: each epoch is a fresh `iter(data)`, the iterator's state
  is the position;
- any other re-iterable (a list, an object whose `__iter__` starts over): each epoch is
  a fresh `iter(data)`; resume re-reads the epoch and discards the batches already
  consumed, with a one-line warning (exact when every pass yields the same order);
- a one-shot iterator (a generator): one pass; resuming mid-stream is refused.

An epoch ends when its iterator is exhausted; `max_epochs` ends the data after that
many. `position()` is JSON (epoch, batches read in it, the iterator's own state) and
`restore(position)` brings a fresh source back to it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from emergence.data.errors import DataError, DataResumeError
from emergence.data.iterator_state import has_state, restore_state, saved_state
from emergence.log import get_logger

log = get_logger("emergence.data")

Position = dict[str, Any]
START: Position = {"epoch": 0, "batches": 0, "iterator": None}


def is_grain_map_dataset(data: Any) -> bool:
    """True for a `grain.MapDataset` (checked without importing grain: a user who has one imported it)."""
    grain = sys.modules.get("grain")
    return grain is not None and isinstance(data, grain.MapDataset)


def own_shard(data: Any, index: int, count: int) -> Any:
    """The part of `data` process `index` of `count` reads under `jax.distributed`: every count-th batch.

    A Grain `MapDataset` or a sequence is sliced here (`data[index::count]`); any other
    iterable is taken as already this process's shard (a `grain.DataLoader` shards with
    its sampler's `shard_options`, e.g. `grain.sharding.ShardByJaxProcess()`).
    """
    if count == 1:
        return data
    if is_grain_map_dataset(data) or (isinstance(data, Sequence) and not isinstance(data, (str, bytes))):
        return data[index::count]
    return data


class BatchSource:
    """One batch at a time from `data`, counting epochs, with a JSON position for the checkpoint.

    Args:
        data: an iterable of pytrees of arrays (see the module docstring for each kind).
        max_epochs: end the data after this many epochs; None reads until the data ends
            (never, for an infinite pipeline; one pass for a one-shot iterator).
        name: what error messages call the data (`train_data`, `val_data`).
        process: (index, count) of this process under `jax.distributed`; None asks JAX.
    """

    def __init__(
        self,
        data: Iterable[Any],
        *,
        max_epochs: int | None = None,
        name: str = "train_data",
        process: tuple[int, int] | None = None,
    ) -> None:
        if isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
            raise DataError(f"{name} must be an iterable of batches (pytrees of arrays), got {type(data).__name__}")
        if max_epochs is not None and (
            isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1
        ):
            raise DataError(f"max_epochs must be a positive integer or None, got {max_epochs!r}")
        index, count = process if process is not None else _this_process()
        self.data = own_shard(data, index, count)
        self.name = name
        self.max_epochs = max_epochs
        self.one_shot = isinstance(data, Iterator)
        self.epoch = 0
        self.batches = 0
        self._iterator: Iterator[Any] | None = None
        self._ended = False

    def __iter__(self) -> BatchSource:
        return self

    def __next__(self) -> Any:
        while not self._ended:
            if self._iterator is None:
                if self.max_epochs is not None and self.epoch >= self.max_epochs:
                    break
                self._iterator = self._open(self.epoch)
            try:
                batch = next(self._iterator)
            except StopIteration:
                if self.batches == 0:
                    self._say_why_no_batch()
                    break
                self.epoch, self.batches, self._iterator = self.epoch + 1, 0, None
                continue
            self.batches += 1
            return batch
        self._ended = True
        raise StopIteration

    def position(self) -> Position:
        """Where the next batch comes from, as JSON: `{"epoch", "batches" (read in it), "iterator" (its state)}`."""
        iterator = self._iterator
        state = saved_state(iterator) if iterator is not None and has_state(iterator) else None
        return {"epoch": self.epoch, "batches": self.batches, "iterator": state}

    def restore(self, position: Position) -> None:
        """Bring this (fresh) source to `position`: set the iterator's state, or re-read and discard the batches."""
        epoch, batches, saved = int(position["epoch"]), int(position["batches"]), position.get("iterator")
        self.epoch, self.batches, self._iterator, self._ended = epoch, 0, None, False
        if batches == 0 and saved is None:
            return
        if self.one_shot:
            raise DataResumeError(
                f"{self.name} is a one-shot iterator ({type(self.data).__name__}), so it cannot be re-read to resume "
                f"at batch {batches} of epoch {epoch}; pass a re-iterable (a list, a grain.MapDataset, or an object "
                "whose __iter__ starts over)"
            )
        self._iterator = self._open(epoch)
        if saved is not None:
            if not has_state(self._iterator):
                raise DataResumeError(
                    f"the checkpoint holds an iterator state but {self.name}'s iterator "
                    f"({type(self._iterator).__name__}) has no set_state; pass the data the run was saved with"
                )
            restore_state(self._iterator, saved)
        else:
            self._skip(batches)
        self.batches = batches

    def _open(self, epoch: int) -> Iterator[Any]:
        if is_grain_map_dataset(self.data):
            length = len(self.data)
            if length < sys.maxsize:  # finite: epoch e is Grain's e-th repeat, reshuffled as repeat() reseeds
                return iter(self.data.repeat()[epoch * length : (epoch + 1) * length])
        return iter(self.data)

    def _skip(self, batches: int) -> None:
        log.warning(
            "%s has no get_state(): resuming by re-reading and discarding the %d batches already read in epoch %d "
            "(exact if every pass yields the same order; a grain dataset resumes without reading)",
            self.name,
            batches,
            self.epoch,
        )
        for read in range(batches):
            try:
                next(self._iterator)
            except StopIteration:
                raise DataResumeError(
                    f"{self.name} has only {read} batches in epoch {self.epoch} but the checkpoint had read {batches}; "
                    "resume with the data the run was saved with"
                ) from None

    def _say_why_no_batch(self) -> None:
        if self.epoch == 0:
            raise DataError(f"{self.name} yielded no batch; pass data with at least one batch")
        if self.max_epochs is not None:
            kind = "a one-shot iterator" if self.one_shot else "an iterable whose new pass is empty"
            log.warning(
                "%s is %s: it ended after %d epoch(s) of max_epochs=%d; pass a re-iterable (a list, a grain dataset) "
                "for more epochs",
                self.name,
                kind,
                self.epoch,
                self.max_epochs,
            )


def _this_process() -> tuple[int, int]:
    import jax

    return jax.process_index(), jax.process_count()
