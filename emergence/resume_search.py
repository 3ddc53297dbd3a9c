"""Where to resume from on Kaggle: the newest valid checkpoint of this or any earlier session.

A Kaggle session starts with an empty `/kaggle/working`; the previous session's output
comes back only when attached as an input (a kernel source), read-only, somewhere under
`/kaggle/input` (its exact path depends on the slug and on Kaggle's layout, so it is
searched for, not assumed). An interrupted session that is restarted in place still
has its own `/kaggle/working/checkpoints`. The newest valid file among all of them wins;
the Trainer then writes to `/kaggle/working` and never touches the inputs.
"""
from __future__ import annotations

from pathlib import Path

from emergence.checkpoint import CheckpointRef, list_checkpoints, parse_name, read_checkpoint
from emergence.errors import EmergenceError
from emergence.log import get_logger
from emergence.platform import kaggle_root

log = get_logger("emergence.resume")


def checkpoint_dirs(root: Path) -> list[Path]:
    """Every directory under `root` (itself included) holding checkpoint-named files."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted({path.parent for path in root.rglob("*.safetensors") if parse_name(path) is not None})


def newest_valid_checkpoint(directories: list[Path]) -> CheckpointRef | None:
    """The newest checkpoint in `directories` that verifies; on a tie, the earlier directory wins.

    Newest by step, then final > emergency > periodic > best (as `CheckpointRef.order`).
    Each candidate is read and its checksum checked, newest first, until one verifies;
    damaged files are skipped with a warning. Reads only.
    """
    ranked = [(ref.order, -rank, ref) for rank, directory in enumerate(directories)
              for ref in list_checkpoints(directory)]
    for _, _, ref in sorted(ranked, key=lambda item: item[:2], reverse=True):
        try:
            read_checkpoint(ref.path)
        except (EmergenceError, OSError) as err:
            log.warning("skipping damaged checkpoint: %s", err)
            continue
        return ref
    return None


def kaggle_resume_checkpoint(root: Path | None = None) -> CheckpointRef | None:
    """The checkpoint a Kaggle session should resume from, or None to start fresh.

    Looks in `<root>/working/checkpoints` (this session, preferred on a tie) and anywhere
    under `<root>/input`; `root` defaults to `emergence.platform.kaggle_root()`
    (`EMERGENCE_KAGGLE_ROOT`, else `/kaggle`).
    """
    root = Path(root) if root is not None else kaggle_root()
    working = root / "working" / "checkpoints"
    directories = [working, *(d for d in checkpoint_dirs(root / "input") if d != working)]
    found = newest_valid_checkpoint(directories)
    if found is not None:
        log.info("resuming from %s (step %d)", found.path, found.step)
    return found
