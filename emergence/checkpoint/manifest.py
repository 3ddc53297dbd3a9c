"""What a checkpoint says about itself besides its arrays: the manifest, versions, config and its changes."""

from __future__ import annotations

import functools
import hashlib
import json
import platform as _platform
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from emergence.errors import ConfigMismatchError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")

_LIBRARIES = ("emergence", "jax", "jaxlib", "flax", "optax", "numpy", "safetensors")


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a checkpoint depends on.

    Looked up once per process: the lookup scans site-packages (3-5 ms, which every
    save would otherwise add to the time it blocks the training loop).
    """
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    versions = [("python", _platform.python_version())]
    for name in _LIBRARIES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(versions)


def config_hash(config: dict[str, Any]) -> str:
    """A stable short hash of a JSON-able config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


@dataclass(frozen=True)
class ConfigChange:
    """One dotted config key whose value differs between a checkpoint and the task."""

    key: str
    saved: Any
    current: Any

    def __str__(self) -> str:
        return f"{self.key}: {self.saved!r} -> {self.current!r}"


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[ConfigChange]:
    """Every dotted key whose value differs (added and removed keys included)."""
    old, new = (
        _flatten(json.loads(json.dumps(saved, default=str))),
        _flatten(json.loads(json.dumps(current, default=str))),
    )
    missing = object()
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, missing), new.get(key, missing)
        if before != after:
            changes.append(
                ConfigChange(key, None if before is missing else before, None if after is missing else after)
            )
    return changes


def is_structural(key: str, structural_keys: set[str]) -> bool:
    """True when `key` is, or lies under, one of the task's structural keys."""
    return any(key == s or key.startswith(s + ".") for s in structural_keys)


def build_manifest(
    *,
    step: int,
    kind: str,
    reason: str | None,
    config: dict[str, Any],
    callbacks: dict[str, Any],
    metrics: dict[str, float],
    typed_keys: dict[str, str],
    platform: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Everything a checkpoint says about itself besides its arrays (`run_id`: its lineage, see `lineage.py`)."""
    lineage = {} if run_id is None else {"run_id": run_id}
    return {
        **lineage,
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
            f"or pass force_resume=True"
        )
