"""Every checkpoint question: format, atomic write, verify, discover, manifest, restore, rotate.

Knows nothing of the Trainer; the Trainer and the callbacks use it. Reading, listing
and verifying files needs numpy and safetensors only: the pytree half (`tree.py`,
`restore.py`, which need JAX) loads when one of its names is first used, so
`emergence ckpt list|inspect|verify` never imports JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

from emergence.checkpoint.discovery import (
    checkpoint_dirs,
    load_newest_valid,
    newest_valid,
    newest_valid_checkpoint,
    resolve_resume,
)
from emergence.checkpoint.format import CheckpointFile, read_checkpoint, read_manifest, write_checkpoint
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
    "flatten_to_host": "tree",
    "unflatten_into": "tree",
    "restore_state": "restore",
    "host_metrics": "restore",
}

__all__ = [
    "KINDS",
    "CheckpointFile",
    "CheckpointRef",
    "checkpoint_dirs",
    "checkpoint_name",
    "delete_checkpoint",
    "flatten_to_host",
    "host_metrics",
    "list_checkpoints",
    "load_newest_valid",
    "newest_valid",
    "newest_valid_checkpoint",
    "parse_name",
    "read_checkpoint",
    "read_manifest",
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
