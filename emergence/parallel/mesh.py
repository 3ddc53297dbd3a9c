"""Data parallel over local devices: a one-axis mesh and where each leaf of the state lives.

`Trainer(devices=...)` builds a `DataParallel`: a `jax.sharding.Mesh` with one axis,
`"data"`, over the chosen devices. The task says how its state is split with an
optional `state_sharding(mesh, state)` returning a pytree of `NamedSharding` (PPO
splits its `num_envs` axis, see `shard_extra`); without it every leaf is replicated.
The state is placed once (after init or restore) and every jitted call keeps those
shardings (`in_shardings`/`out_shardings`), so the compiler partitions the step and
inserts the gradient all-reduce itself: no hand-written `pmap`.

Under `jax.distributed` (`devices="all"` spans every process's devices) a save is a
collective: every process gathers the state (`gathered`), process 0 alone writes
(`writes`). docs/scaling.md says what of many hosts is not handled yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emergence.checkpoint.tree import is_typed_key, leaf_path, weakly_typed
from emergence.errors import EmergenceError

AXIS = "data"

Devices = str | int | Sequence[jax.Device]


class DeviceError(EmergenceError, ValueError):
    """A `devices=` value that names no usable set of local devices."""


def resolve_devices(devices: Devices) -> list[jax.Device]:
    """The devices `devices` names: `"all"` (every process's under `jax.distributed`), the first N local
    ones, or an explicit list of local `jax.Device`."""
    available = jax.local_devices()
    if devices == "all":
        return list(jax.devices())
    if isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise DeviceError(
                f"devices={devices} but this process has {len(available)} "
                f"{available[0].platform} device(s); pass 1..{len(available)} or 'all'"
            )
        return list(available[:devices])
    if isinstance(devices, (list, tuple)) and devices and all(isinstance(d, jax.Device) for d in devices):
        foreign = [d for d in devices if d not in available]
        if foreign:
            raise DeviceError(
                f"device {foreign[0]} is not a local device of this process; pick from jax.local_devices()"
            )
        if len(set(devices)) != len(devices):
            raise DeviceError("devices lists a device twice; pass each device once")
        return list(devices)
    raise DeviceError(f"devices must be 'all', a positive int or a non-empty list of jax devices, got {devices!r}")


def replicated(mesh: Mesh) -> NamedSharding:
    """A whole copy of the array on every device of `mesh`."""
    return NamedSharding(mesh, PartitionSpec())


def split_leading_axis(mesh: Mesh, leaf: Any) -> NamedSharding:
    """Split `leaf`'s first axis across the mesh when it divides evenly; else replicate it."""
    shape = getattr(leaf, "shape", ())
    if shape and shape[0] % mesh.size == 0:
        return NamedSharding(mesh, PartitionSpec(AXIS))
    return replicated(mesh)


def shard_extra(mesh: Mesh, state: Any, field: str = "extra") -> Any:
    """Shardings for any state pytree whose `field` subtree's leaves share a leading batch axis (envs, worlds).

    Leaves under the top-level field or key named `field` (our `TrainState.extra`, a
    flax `TrainState` subclass's extra field, a dict's `"extra"` entry) are split across
    devices on that axis; every other leaf (step, params, optimizer state, keys) is
    replicated, so the compiler averages gradients over the devices' shares of the batch.
    Nothing here assumes `emergence.TrainState`'s fields.
    """

    def rule(path: tuple, leaf: Any) -> NamedSharding:
        under = bool(path) and leaf_path(path[:1]) == field
        return split_leading_axis(mesh, leaf) if under else replicated(mesh)

    return jax.tree_util.tree_map_with_path(rule, state)


def _from_host(leaf: Any, sharding: NamedSharding) -> jax.Array:
    """`leaf` placed with a sharding that spans processes, by way of a host copy (every process holds the same)."""
    if is_typed_key(leaf):
        return jax.random.wrap_key_data(_from_host(jax.random.key_data(leaf), sharding), impl=jax.random.key_impl(leaf))
    kind = jax.typeof(leaf)
    placed = jax.device_put(np.asarray(jax.device_get(leaf), dtype=kind.dtype), sharding)
    return weakly_typed(placed) if kind.weak_type else placed  # flax's `step=0` stays weak, as on one process


class DataParallel:
    """A one-axis mesh over local devices, placing a task's state on it and jitting steps that keep it there."""

    def __init__(self, devices: Devices) -> None:
        self.devices = resolve_devices(devices)
        self.mesh = Mesh(np.array(self.devices), (AXIS,))
        self.state_shardings: Any = None
        self.many_processes = jax.process_count() > 1
        self._gather: Callable | None = None

    def gathered(self, state: Any) -> Any:
        """`state` with every leaf readable by `jax.device_get` on this process.

        On one process that is `state` itself (`device_get` gathers local shards). Across
        processes a leaf split over other hosts' devices is first copied whole onto every
        device by a jitted identity: a collective, so every process must call this at the
        same step (a save is taken by all processes, written by process 0).
        """
        if jax.process_count() == 1:
            return state
        if self._gather is None:
            self._gather = jax.jit(lambda tree: tree, out_shardings=replicated(self.mesh))
        return self._gather(state)

    def saved_durably(self, ref: Any) -> None:
        """After a synchronous save: across processes, a barrier that process 0 passes once the file is durable.

        So no process returns from `fit()` (or goes on) before the emergency or final
        checkpoint exists. Process 0 reaches it also when its write failed, so the others
        never wait forever. On one process, nothing.
        """
        if self.many_processes:
            multihost_utils.sync_global_devices(f"emergence: {ref.path.name} written")

    def place(self, task: Any, state: Any) -> Any:
        """`state` on the mesh as the task's `state_sharding(mesh, state)` says (replicated without one)."""
        declare = getattr(task, "state_sharding", None)
        everywhere = lambda tree: jax.tree.map(lambda _: replicated(self.mesh), tree)
        shardings = declare(self.mesh, state) if callable(declare) else everywhere(state)
        self.state_shardings = shardings
        if jax.process_count() > 1:  # device_put reaches other hosts' devices only from host memory
            return jax.tree.map(_from_host, state, shardings)
        return jax.device_put(state, shardings)

    def jit_step(self, fn: Callable, batch_sharding: Any = None, totals: bool = False) -> Callable:
        """`jax.jit(fn, donate_argnums=0)` for `fn(state) -> (state, metrics)` that keeps the placed shardings.

        Metrics come out replicated (scalars: every device holds them, fetching one costs
        no gather). With `totals`, `fn(state, totals[, batch]) -> (state, metrics, totals)`:
        the metric totals (`emergence.metrics.totals`) are replicated and donated too.
        """
        if self.state_shardings is None:
            raise RuntimeError("DataParallel.jit_step before place(): place the state first")
        every = replicated(self.mesh)
        carried = (self.state_shardings, every) if totals else (self.state_shardings,)
        batch = () if batch_sharding is None else (batch_sharding,)  # fn(state, batch) with train_data
        return jax.jit(
            fn,
            donate_argnums=tuple(range(len(carried))),
            in_shardings=(*carried, *batch),
            out_shardings=(self.state_shardings, every, *carried[1:]),
        )

    def replicate(self, host: np.ndarray) -> jax.Array:
        """A host array copied whole onto every device of the mesh, from this process's copy.

        Built from local data only: `device_put` across processes first checks that every process
        passed equal values, and a NaN (an empty metric window's `last`) never equals itself."""
        return jax.make_array_from_callback(host.shape, replicated(self.mesh), lambda index: host[index])
