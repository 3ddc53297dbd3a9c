"""Finding the checkpoint to resume from: one newest-valid scan, over one directory or several.

Discovery does not trust `latest.json`: it ranks checkpoint-named files by step (then
final > emergency > periodic > best, as `CheckpointRef.order`), reads and verifies
them newest first, warns about each damaged one it skips, and returns the first that
verifies. It only reads: nothing in the directories is changed, so they may be
read-only (a previous Kaggle session's output under `/kaggle/input`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from emergence.checkpoint.format import CheckpointFile, read_checkpoint
from emergence.checkpoint.store import CheckpointRef, list_checkpoints, parse_name
from emergence.errors import CheckpointNotFoundError, EmergenceError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")


def checkpoint_dirs(root: Path | str) -> list[Path]:
    """Every directory under `root` (itself included) holding checkpoint-named files."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted({path.parent for path in root.rglob("*.safetensors") if parse_name(path) is not None})


def newest_valid(directories: Sequence[Path | str]) -> CheckpointFile | None:
    """The newest checkpoint in `directories` that verifies, read; on a tie, the earlier directory wins."""
    ranked = [
        (ref.order, -rank, ref) for rank, directory in enumerate(directories) for ref in list_checkpoints(directory)
    ]
    for _, _, ref in sorted(ranked, key=lambda item: item[:2], reverse=True):
        try:
            return read_checkpoint(ref.path)
        except (EmergenceError, OSError) as err:
            log.warning("skipping damaged checkpoint: %s", err)
    return None


def newest_valid_checkpoint(directories: Sequence[Path | str]) -> CheckpointRef | None:
    """`newest_valid` as a ref (path, kind, step, checksum): for callers that only need to know which file."""
    found = newest_valid(directories)
    if found is None:
        return None
    ref = parse_name(found.path)
    return CheckpointRef(found.path, ref.kind, ref.step, found.checksum)


def load_newest_valid(directory: Path | str) -> CheckpointFile | None:
    """The newest checkpoint in `directory` that verifies, or None if there is none."""
    return newest_valid([directory])


def resolve_resume(source: Path | str) -> CheckpointFile:
    """The checkpoint a `resume=<path>` names: that file, or the newest valid one in that dir."""
    source = Path(source)
    if source.is_file():
        return read_checkpoint(source)
    if not source.exists():
        raise CheckpointNotFoundError(f"resume path {source} does not exist; pass resume='auto' or None to start fresh")
    found = load_newest_valid(source)
    if found is None:
        raise CheckpointNotFoundError(
            f"no valid checkpoint in {source}; point resume at a directory with checkpoints, or use resume='auto'"
        )
    return found
