"""Scaling out: data parallel over local devices (`DataParallel`) and many seeds in one program (`ManySeeds`).

`Trainer(devices=...)` uses `DataParallel`; wrap a task in `ManySeeds(task, num_seeds)`
to train S independent runs as one vmapped program, and pull one run out of its
checkpoint with `export_seed` (`emergence ckpt export --seed i`). Under
`jax.distributed` the Trainer adds a `StopAgreement` so every process stops at the same
step. docs/scaling.md says what runs where.
"""
from emergence.parallel.agreement import StopAgreement
from emergence.parallel.export import export_seed, seed_checkpoint
from emergence.parallel.mesh import (
    AXIS,
    DataParallel,
    DeviceError,
    replicated,
    resolve_devices,
    shard_extra,
    split_leading_axis,
)
from emergence.parallel.seeds import ManySeeds, per_seed, seed_tag

__all__ = ["AXIS", "DataParallel", "DeviceError", "ManySeeds", "StopAgreement", "export_seed", "per_seed",
           "replicated", "resolve_devices", "seed_checkpoint", "seed_tag", "shard_extra", "split_leading_axis"]
