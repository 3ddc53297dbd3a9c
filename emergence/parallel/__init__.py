"""Scaling out: data parallel over local devices (`DataParallel`) and many seeds in one program (`ManySeeds`).

`Trainer(devices=...)` uses `DataParallel`; wrap a task in `ManySeeds(task, num_seeds)`
to train S independent runs as one vmapped program, and pull one run out of its
checkpoint with `export_seed` (`emergence ckpt export --seed i`). Under
`jax.distributed` the Trainer agrees on stops across processes (`stops.py`) so
every process stops at the same step. docs/scaling.md says what runs where. Names load
when first used (each module imports JAX).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "AGREE_EVERY_N_CALLS": "stops",
    "Stops": "stops",
    "export_seed": "export",
    "seed_checkpoint": "export",
    "AXIS": "mesh",
    "DataParallel": "mesh",
    "DeviceError": "mesh",
    "replicated": "mesh",
    "resolve_devices": "mesh",
    "shard_extra": "mesh",
    "split_leading_axis": "mesh",
    "ManySeeds": "seeds",
    "per_seed": "seeds",
    "seed_tag": "seeds",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'emergence.parallel' has no attribute {name!r}")
    return getattr(importlib.import_module(f"emergence.parallel.{_WHERE[name]}"), name)
