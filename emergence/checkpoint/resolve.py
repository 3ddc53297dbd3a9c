"""What a path means: the one resolver for "which checkpoint does this name".

Every caller asks here: the Trainer's `resume=`, the `CheckpointManager`, `emergence ckpt`,
the Kaggle platform and the lab. A source is

- None: no checkpoint (start fresh);
- `"auto"`: the newest valid file of the run dir's `checkpoints/`, and of any read-only
  `roots` given (a previous Kaggle session's output), the run dir's own winning a tie;
- a checkpoint file: that file, verified (a damaged one is an error: it was named);
- a directory: a `checkpoints/` dir, or a run dir or sweep dir holding one: the newest
  valid file there (skipping damaged ones, with a warning).

Resolution only reads: nothing it looks at is changed or deleted, so any of it may be
read-only. The newest-valid scan itself is `discovery.newest_valid`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from emergence.checkpoint.discovery import newest_valid
from emergence.checkpoint.format import CheckpointFile, read_checkpoint
from emergence.checkpoint.store import CheckpointRef, parse_name
from emergence.errors import CheckpointNotFoundError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")

AUTO = "auto"
CHECKPOINTS = "checkpoints"
Source = Literal["auto"] | str | os.PathLike | None


def checkpoint_dir_of(path: Path | str) -> Path:
    """The checkpoint directory a directory path means: `path/checkpoints` for a run or sweep dir, else `path`."""
    nested = Path(path) / CHECKPOINTS
    return nested if nested.is_dir() else Path(path)


def checkpoint_dirs_under(root: Path | str) -> list[Path]:
    """Every directory under a read-only `root` (itself included) holding checkpoint-named files, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted({path.parent for path in root.rglob("*.safetensors") if parse_name(path) is not None})


def search_dirs(run_dir: Path | str, roots: Sequence[Path | str] = ()) -> list[Path]:
    """Where `"auto"` looks, in tie-break order: the run dir's `checkpoints/`, then the checkpoint dirs under roots."""
    own = Path(run_dir) / CHECKPOINTS
    found = [own]
    for root in roots:
        found += [d for d in checkpoint_dirs_under(root) if d not in found]
    return found


def resolve_checkpoint(
    source: Source, *, run_dir: Path | str | None = None, roots: Sequence[Path | str] = (), run_id: str | None = None
) -> CheckpointFile | None:
    """The verified checkpoint `source` names (see the module docstring), or None for None / nothing under `"auto"`.

    `run_id`: under `"auto"`, only files of that run count (`lineage.py`); others are skipped
    with a warning. A named file or directory is taken whatever its run: it was named.

    Raises `CheckpointNotFoundError` when a named path does not exist or holds no valid
    checkpoint, `CorruptCheckpointError` when a named file does not verify.
    """
    if source is None:
        return None
    if isinstance(source, str) and source == AUTO:
        if run_dir is None:
            raise ValueError("resume='auto' needs the run dir to search; pass run_dir=")
        return newest_valid(search_dirs(run_dir, roots), run_id)
    path = Path(source)
    if path.is_file():
        return read_checkpoint(path)
    if not path.exists():
        raise CheckpointNotFoundError(
            f"resume path {path} does not exist; pass a checkpoint file, a run dir or a checkpoint dir "
            f"(or resume='auto' / None to start fresh)"
        )
    folder = checkpoint_dir_of(path)
    found = newest_valid([folder])
    if found is None:
        raise CheckpointNotFoundError(
            f"no valid checkpoint in {folder}; point resume at a run dir or a directory with checkpoints, "
            f"or use resume='auto'"
        )
    return found


def file_ref(file: CheckpointFile) -> CheckpointRef:
    """A read checkpoint as a ref (path, kind, step, checksum): kind and step from its name, else its manifest.

    A final saved as a hard link of the periodic file of its step keeps that file's
    manifest (kind `periodic`): its name says which file it is.
    """
    named = parse_name(file.path)
    if named is not None:
        return CheckpointRef(file.path, named.kind, named.step, file.checksum)
    return CheckpointRef(file.path, str(file.manifest["kind"]), int(file.manifest["step"]), file.checksum)


def load_newest_valid(directory: Path | str) -> CheckpointFile | None:
    """The newest valid checkpoint in one directory (kept for `trainer.py` until it asks the `CheckpointManager`)."""
    return newest_valid([directory])


def resolve_resume(source: Path | str) -> CheckpointFile:
    """`resolve_checkpoint` for an explicit path (kept for `trainer.py` until it asks the `CheckpointManager`)."""
    return resolve_checkpoint(Path(source))
