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
from emergence.checkpoint.lineage import belongs, run_id_of
from emergence.checkpoint.store import list_checkpoints
from emergence.errors import EmergenceError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")

UNREADABLE = (EmergenceError, OSError, MemoryError, RecursionError, ValueError)
"""What reading a damaged file may raise: any of them means "damaged, skipped", never a stopped resume."""


def newest_valid(directories: Sequence[Path | str], run_id: str | None = None) -> CheckpointFile | None:
    """The newest checkpoint in `directories` that verifies (and belongs to run `run_id`, if given), read.

    On a tie the earlier directory wins. A file of another run (`lineage.belongs`) is
    skipped with a warning naming both runs: it is never resumed without a word.
    """
    ranked = [
        (ref.order, -rank, ref) for rank, directory in enumerate(directories) for ref in list_checkpoints(directory)
    ]
    for _, _, ref in sorted(ranked, key=lambda item: item[:2], reverse=True):
        try:
            file = read_checkpoint(ref.path)
        except UNREADABLE as err:
            log.warning("skipping damaged checkpoint: %s", err)
            continue
        if belongs(file.manifest, run_id):
            return file
        log.warning(
            "skipping %s: it belongs to run %s, not to this run dir's run %s; resume it by path to take it over",
            ref.path,
            run_id_of(file.manifest),
            run_id,
        )
    return None
