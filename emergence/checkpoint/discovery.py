"""The newest-valid scan: the one way a checkpoint is picked from directories (what a path means: `resolve.py`).

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
from emergence.checkpoint.store import list_checkpoints
from emergence.errors import EmergenceError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")

UNREADABLE = (EmergenceError, OSError, MemoryError, RecursionError, ValueError)
"""What reading a damaged file may raise: any of them means "damaged, skipped", never a stopped resume."""


def newest_valid(directories: Sequence[Path | str]) -> CheckpointFile | None:
    """The newest checkpoint in `directories` that verifies, read; on a tie, the earlier directory wins."""
    ranked = [
        (ref.order, -rank, ref) for rank, directory in enumerate(directories) for ref in list_checkpoints(directory)
    ]
    for _, _, ref in sorted(ranked, key=lambda item: item[:2], reverse=True):
        try:
            return read_checkpoint(ref.path)
        except UNREADABLE as err:
            log.warning("skipping damaged checkpoint: %s", err)
    return None
