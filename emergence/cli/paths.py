"""What a path on the command line names: a checkpoint file, a checkpoint directory or a run directory."""

from __future__ import annotations

from pathlib import Path

from emergence.checkpoint import CheckpointFile, load_newest_valid, read_checkpoint
from emergence.errors import CheckpointNotFoundError


def checkpoint_dir(path: Path) -> Path:
    """The directory holding the checkpoints: `path/checkpoints` for a run dir, else `path` itself."""
    nested = Path(path) / "checkpoints"
    return nested if nested.is_dir() else Path(path)


def existing(path: Path) -> Path:
    """`path`, or a one-line `CheckpointNotFoundError` when nothing is there."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"{path} does not exist; pass a checkpoint file, a run dir or a checkpoint dir")
    return path


def load_checkpoint(path: Path) -> CheckpointFile:
    """The verified checkpoint `path` names: that file, or the newest valid one in a run/checkpoint dir."""
    path = existing(path)
    if path.is_file():
        return read_checkpoint(path)
    found = load_newest_valid(checkpoint_dir(path))
    if found is None:
        raise CheckpointNotFoundError(f"no valid checkpoint in {checkpoint_dir(path)}; pass a checkpoint file")
    return found
