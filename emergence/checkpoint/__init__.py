"""Every checkpoint question: format, atomic write, verify, discover, manifest, restore, rotate.

`CheckpointManager` (manager.py) owns a run dir's files: save and keep policies, the
background write, rotation, resume and restore; `resolve_checkpoint` (resolve.py) is the
one answer to "which checkpoint does this path mean". Knows nothing of the Trainer; the
Trainer and the callbacks use it. Reading, listing
and verifying files needs numpy and safetensors only: the pytree half (`tree.py`,
`restore.py`, which need JAX) loads when one of its names is first used, so
`emergence ckpt list|inspect|verify` never imports JAX. The manager loads the same way (its write
path checks finiteness with JAX's dtypes).
"""

from __future__ import annotations

import importlib
from typing import Any

from emergence.checkpoint.discovery import newest_valid
from emergence.checkpoint.format import CheckpointFile, read_checkpoint, read_manifest, write_checkpoint
from emergence.checkpoint.keep_policy import KeepBestN, KeepLastN, KeepPolicy
from emergence.checkpoint.pending import Durable
from emergence.checkpoint.resolve import (
    checkpoint_dir_of,
    checkpoint_dirs_under,
    file_ref,
    load_newest_valid,
    resolve_checkpoint,
    resolve_resume,
)
from emergence.checkpoint.save_policy import (
    AnyOf,
    Continuous,
    EveryNSeconds,
    EveryNSteps,
    Never,
    SaveContext,
    SavePolicy,
    every,
)
from emergence.checkpoint.store import (
    KINDS,
    CheckpointRef,
    checkpoint_name,
    delete_checkpoint,
    list_checkpoints,
    parse_name,
    rotate,
    write_latest,
)

_NEEDS_JAX = {
    "CheckpointManager": "manager",
    "flatten_to_host": "tree",
    "unflatten_into": "tree",
    "restore_state": "restore",
    "host_metrics": "restore",
}

__all__ = [
    "KINDS",
    "AnyOf",
    "CheckpointFile",
    "CheckpointManager",
    "CheckpointRef",
    "Continuous",
    "Durable",
    "EveryNSeconds",
    "EveryNSteps",
    "KeepBestN",
    "KeepLastN",
    "KeepPolicy",
    "Never",
    "SaveContext",
    "SavePolicy",
    "checkpoint_dir_of",
    "checkpoint_dirs_under",
    "checkpoint_name",
    "delete_checkpoint",
    "every",
    "file_ref",
    "flatten_to_host",
    "host_metrics",
    "list_checkpoints",
    "load_newest_valid",
    "newest_valid",
    "parse_name",
    "read_checkpoint",
    "read_manifest",
    "resolve_checkpoint",
    "resolve_resume",
    "restore_state",
    "rotate",
    "unflatten_into",
    "write_checkpoint",
    "write_latest",
]


def __getattr__(name: str) -> Any:
    if name not in _NEEDS_JAX:
        raise AttributeError(f"module 'emergence.checkpoint' has no attribute {name!r}")
    return getattr(importlib.import_module(f"emergence.checkpoint.{_NEEDS_JAX[name]}"), name)
