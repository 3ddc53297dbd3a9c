"""Host batches onto the device in one transfer: the default device, or split along the batch axis of a mesh.

With `Trainer(devices=...)` the state lives on a one-axis mesh (`emergence.parallel`);
a batch is split along its batch axis (the leading one, or the second for a stack of K
batches) so each device gets its share, and the compiler averages the gradients.
Under `jax.distributed` each process holds only its own batches (`own_shard`): the
global batch is assembled from every process's local one
(`jax.make_array_from_process_local_data`), with no copy between hosts.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emergence.checkpoint.tree import leaf_path
from emergence.data.errors import DataError
from emergence.parallel.mesh import AXIS


class BatchPlacement:
    """Puts host batches on the device: `place(batch, stacked)` is one `device_put` for the whole tree."""

    def __init__(self, mesh: Mesh | None = None) -> None:
        self.mesh = mesh
        self.many_processes = mesh is not None and jax.process_count() > 1

    def sharding(self, stacked: bool) -> NamedSharding | None:
        """Where a batch goes: None (the default device), or its batch axis split over the mesh."""
        if self.mesh is None:
            return None
        return NamedSharding(self.mesh, PartitionSpec(None, AXIS) if stacked else PartitionSpec(AXIS))

    def place(self, batch: Any, stacked: bool) -> Any:
        """`batch` (host arrays) on the device(s); `stacked` says its leading axis is the K of a fused call."""
        sharding = self.sharding(stacked)
        if sharding is None:
            return jax.device_put(batch)
        self._check_divisible(batch, axis=1 if stacked else 0)
        if self.many_processes:
            return jax.tree.map(lambda leaf: jax.make_array_from_process_local_data(sharding, leaf), batch)
        return jax.device_put(batch, sharding)

    def _check_divisible(self, batch: Any, axis: int) -> None:
        local = len(self.mesh.local_devices)
        for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
            size = leaf.shape[axis] if leaf.ndim > axis else None
            if size is None or size % local:
                raise DataError(
                    f"batch leaf '{leaf_path(path)}' has shape {leaf.shape}: its batch axis must split evenly over "
                    f"this process's {local} devices; use a batch size that is a multiple of {local}"
                )
