"""Data parallel over local devices: a one-axis mesh and where each leaf of the state lives.

`Trainer(devices=...)` builds a `DataParallel`: a `jax.sharding.Mesh` with one axis,
`"data"`, over the chosen devices. The task says how its state is split with an
optional `state_sharding(mesh, state)` returning a pytree of `NamedSharding` (PPO
splits its `num_envs` axis, see `shard_extra`); without it every leaf is replicated.
The state is placed once (after init or restore) and every jitted call keeps those
shardings (`in_shardings`/`out_shardings`), so the compiler partitions the step and
inserts the gradient all-reduce itself: no hand-written `pmap`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emergence.errors import EmergenceError

AXIS = "data"

Devices = str | int | Sequence[jax.Device]


class DeviceError(EmergenceError, ValueError):
    """A `devices=` value that names no usable set of local devices."""


def resolve_devices(devices: Devices) -> list[jax.Device]:
    """The local devices `devices` names: `"all"`, the first N, or an explicit list of `jax.Device`."""
    available = jax.local_devices()
    if devices == "all":
        return list(available)
    if isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise DeviceError(f"devices={devices} but this process has {len(available)} "
                              f"{available[0].platform} device(s); pass 1..{len(available)} or 'all'")
        return list(available[:devices])
    if isinstance(devices, (list, tuple)) and devices and all(isinstance(d, jax.Device) for d in devices):
        foreign = [d for d in devices if d not in available]
        if foreign:
            raise DeviceError(f"device {foreign[0]} is not a local device of this process; pick from jax.local_devices()")
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


def shard_extra(mesh: Mesh, state: Any) -> Any:
    """Shardings for a `TrainState` whose `extra` leaves share a leading batch axis (envs, worlds).

    That axis is split across devices; `step`, `params`, `opt_state` and `rng` are
    replicated, so the compiler averages gradients over the devices' shares of the batch.
    """
    every = lambda tree, rule: jax.tree.map(rule, tree)
    copy = lambda _: replicated(mesh)
    return state.replace(step=copy(state.step), params=every(state.params, copy), opt_state=every(state.opt_state, copy),
                         rng=copy(state.rng), extra=every(state.extra, lambda leaf: split_leading_axis(mesh, leaf)))


class DataParallel:
    """A one-axis mesh over local devices, placing a task's state on it and jitting steps that keep it there."""

    def __init__(self, devices: Devices) -> None:
        self.devices = resolve_devices(devices)
        self.mesh = Mesh(np.array(self.devices), (AXIS,))
        self.state_shardings: Any = None

    def place(self, task: Any, state: Any) -> Any:
        """`state` on the mesh as the task's `state_sharding(mesh, state)` says (replicated without one)."""
        declare = getattr(task, "state_sharding", None)
        shardings = declare(self.mesh, state) if callable(declare) else jax.tree.map(lambda _: replicated(self.mesh), state)
        self.state_shardings = shardings
        return jax.device_put(state, shardings)

    def jit_step(self, fn: Callable) -> Callable:
        """`jax.jit(fn, donate_argnums=0)` for `fn(state) -> (state, metrics)` that keeps the placed shardings.

        Metrics come out replicated (scalars: every device holds them, fetching one costs
        no gather).
        """
        if self.state_shardings is None:
            raise RuntimeError("DataParallel.jit_step before place(): place the state first")
        return jax.jit(fn, donate_argnums=0, in_shardings=(self.state_shardings,),
                       out_shardings=(self.state_shardings, replicated(self.mesh)))
