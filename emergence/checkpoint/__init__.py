"""Checkpoint storage: format, atomic write, verify, discover, rotate.

Knows nothing of the Trainer; the Trainer and the callbacks use it.
"""
from emergence.checkpoint.format import CheckpointFile, read_checkpoint, read_manifest, write_checkpoint
from emergence.checkpoint.store import (
    KINDS,
    CheckpointRef,
    checkpoint_name,
    delete_checkpoint,
    list_checkpoints,
    load_newest_valid,
    parse_name,
    resolve_resume,
    rotate,
    write_latest,
)
from emergence.checkpoint.tree import flatten_to_host, unflatten_into

__all__ = [
    "KINDS", "CheckpointFile", "CheckpointRef", "checkpoint_name", "delete_checkpoint", "flatten_to_host",
    "list_checkpoints", "load_newest_valid", "parse_name", "read_checkpoint", "read_manifest",
    "resolve_resume", "rotate", "unflatten_into", "write_checkpoint", "write_latest",
]
