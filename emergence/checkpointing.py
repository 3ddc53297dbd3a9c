"""Between the Trainer and the checkpoint store: what goes into a checkpoint, and back.

`checkpoint/` stores arrays and a manifest and knows nothing of runs; this module
builds the manifest from a run and restores a run's state from a checkpoint file,
checking the arrays against the task's state and the config against the task's.
"""
from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from emergence.checkpoint import CheckpointFile, unflatten_into
from emergence.checkpoint.manifest import config_changes, config_hash, is_structural, library_versions
from emergence.errors import ConfigMismatchError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")


def host_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    """Device metrics as plain floats for a manifest (a sync: call only when saving)."""
    if not metrics:
        return {}
    fetched = jax.device_get(metrics)
    return {name: float(np.mean(value)) for name, value in fetched.items()}


def build_manifest(*, step: int, kind: str, reason: str | None, config: dict[str, Any],
                   callbacks: dict[str, Any], metrics: dict[str, float], typed_keys: dict[str, str],
                   platform: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a checkpoint says about itself besides its arrays."""
    return {
        "step": step,
        "kind": kind,
        "reason": reason,
        "wall_time": time.time(),
        "config": config,
        "config_hash": config_hash(config),
        "callbacks": callbacks,
        "metrics": metrics,
        "versions": library_versions(),
        "platform": platform or {},
        "typed_keys": typed_keys,
    }


def check_config(saved: dict[str, Any], current: dict[str, Any], structural_keys: set[str], force: bool) -> None:
    """Log every config change; refuse structural ones unless `force`."""
    changes = config_changes(saved, current)
    for change in changes:
        log.warning("config changed since the checkpoint: %s", change)
    refused = [c for c in changes if is_structural(c.key, structural_keys)]
    if refused and not force:
        listed = "; ".join(str(c) for c in refused)
        raise ConfigMismatchError(
            f"cannot resume: structural config changed ({listed}); restore it, start a new run_dir, "
            f"or pass force_resume=True")


def restore_state(fresh_state: Any, file: CheckpointFile) -> Any:
    """The checkpoint's arrays placed into the task's freshly initialised state."""
    return unflatten_into(fresh_state, file.arrays, file.manifest.get("typed_keys", {}))
