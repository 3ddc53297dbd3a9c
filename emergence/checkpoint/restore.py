"""Restoring a run's state from a checkpoint: the saved arrays placed into the task's fresh state.

`unflatten_into` (tree.py) checks every leaf against the fresh state, so a mismatch
names the leaf path and both shapes; the config is checked first (`check_config`,
manifest.py). `host_metrics` is the one place a save fetches metrics off the device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from emergence.checkpoint.format import CheckpointFile
from emergence.checkpoint.tree import unflatten_into

Upgrade = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def host_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    """Device metrics as plain floats for a manifest (a sync: call only when saving)."""
    if not metrics:
        return {}
    fetched = jax.device_get(metrics)
    return {name: float(np.mean(value)) for name, value in fetched.items()}


def restore_state(fresh_state: Any, file: CheckpointFile, upgrade: Upgrade | None = None) -> Any:
    """The checkpoint's arrays placed into the task's freshly initialised state.

    `upgrade` (the task's `upgrade_checkpoint`) first fits an older file's arrays to today's state.
    """
    arrays = file.arrays if upgrade is None else upgrade(dict(file.arrays))
    return unflatten_into(fresh_state, arrays, file.manifest.get("typed_keys", {}))
