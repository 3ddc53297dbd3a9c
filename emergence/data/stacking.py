"""K host batches stacked into one for a fused call, each checked against the first batch's structure.

A jitted call is compiled for one batch structure (tree, shapes, dtypes): a batch that
differs would recompile the step, or break the stack. `BatchSpec` remembers the first
batch's signature and compares each later one against it (a tuple comparison); on a
difference, chex names the leaf and both shapes in a one-line `BatchChangedError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chex
import jax
import numpy as np

from emergence.contract import chex_detail
from emergence.data.errors import BatchChangedError, DataError


def host_arrays(batch: Any, name: str = "train_data") -> Any:
    """`batch` with every leaf a numpy array (a number or list becomes one); a leaf that is not numeric is an error."""

    def as_array(leaf: Any) -> np.ndarray:
        array = np.asarray(leaf)
        if array.dtype.kind not in "biufc":
            raise DataError(
                f"{name} yielded a batch with a {type(leaf).__name__} leaf of dtype {array.dtype}; "
                "batches are pytrees of numeric arrays (decode strings and images in the pipeline)"
            )
        return array

    return jax.tree.map(as_array, batch)


def _signature(batch: Any) -> tuple:
    leaves, treedef = jax.tree.flatten(batch)
    return treedef, tuple((leaf.shape, leaf.dtype) for leaf in leaves)


class BatchSpec:
    """The first batch's structure, shapes and dtypes; `check` refuses a batch that differs."""

    def __init__(self, name: str = "train_data") -> None:
        self.name = name
        self.first: Any = None
        self._signature: tuple | None = None
        self.seen = 0

    def check(self, batch: Any) -> None:
        """Raise `BatchChangedError` unless `batch` (host arrays) matches the first batch checked."""
        self.seen += 1
        signature = _signature(batch)
        if self._signature is None:
            self.first, self._signature = batch, signature
            return
        if signature != self._signature:
            raise BatchChangedError(
                f"batch {self.seen} of {self.name} differs from the first batch ({_difference(self.first, batch)}); "
                "every batch must keep the first one's structure, shapes and dtypes "
                "(a smaller last batch: batch with drop_remainder=True, or pad it)"
            )


def _difference(first: Any, batch: Any) -> str:
    """What chex says differs between two batches, as one line."""
    try:
        chex.assert_trees_all_equal_structs(first, batch)
        chex.assert_trees_all_equal_shapes_and_dtypes(first, batch)
    except AssertionError as err:
        return chex_detail(err)
    return "same shapes and dtypes"


def stack(batches: Sequence[Any]) -> Any:
    """One pytree whose leaves carry a new leading axis of `len(batches)` (one host copy)."""
    return jax.tree.map(lambda *leaves: np.stack(leaves), *batches)
