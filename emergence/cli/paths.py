"""What a path on the command line names: a checkpoint file, a checkpoint directory or a run (or sweep) directory.

The answer is the checkpoint package's one resolver (`emergence.checkpoint.resolve`);
this module only adds the command line's one-line error for a path with nothing there.
"""

from __future__ import annotations

from pathlib import Path

from emergence.checkpoint import CheckpointFile, resolve_checkpoint
from emergence.errors import CheckpointNotFoundError


def existing(path: Path) -> Path:
    """`path`, or a one-line `CheckpointNotFoundError` when nothing is there."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise CheckpointNotFoundError(
            f"{path} is a symlink that leads nowhere (dangling, or a loop); pass the checkpoint file or run dir itself"
        )
    if not path.exists():
        raise CheckpointNotFoundError(f"{path} does not exist; pass a checkpoint file, a run dir or a checkpoint dir")
    return path


def load_checkpoint(path: Path) -> CheckpointFile:
    """The verified checkpoint `path` names: that file, or the newest valid one in a run/checkpoint dir."""
    return resolve_checkpoint(existing(path))
