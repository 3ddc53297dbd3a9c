"""No silent destruction: a fresh start in a run dir that already holds a run's outputs.

Starting fresh (no resume, or `"auto"` finding nothing valid of this run) where
checkpoints or metrics already lie used to truncate `metrics.csv` and let rotation delete
the new run's files. Now it is a one-line `RunDirInUseError` with the three choices:
resume, a new run dir, or an explicit overwrite, which **moves** the old outputs into a
dated sub-folder `<run_dir>/previous-<UTC time>/` (nothing is deleted; a rename never
follows a symlink). The `CheckpointManager` makes the decision; the caller only passes
the user's choice (`open(overwrite=...)`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from emergence.checkpoint.atomic import fsync_dir
from emergence.checkpoint.rotation import CORRUPT_SUFFIX
from emergence.checkpoint.store import parse_name
from emergence.errors import RunDirInUseError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")

CHECKPOINTS = "checkpoints"
METRIC_OUTPUTS = ("metrics.csv", "metrics.jsonl", "metrics_mean.csv", "tensorboard")
"""What the metric sinks write in a run dir (`metrics/`): any of them means rows a fresh start would lose."""
RUN_OUTPUTS = (CHECKPOINTS, *METRIC_OUTPUTS, "training_curves.png", "progress.json", "summary.json", "outputs.zip")
"""What an overwrite moves aside: a run's outputs (a Kaggle run dir also holds the notebook's own files)."""
PREVIOUS_PREFIX = "previous-"


def used_outputs(run_dir: Path | str) -> list[str]:
    """The outputs of an earlier run in `run_dir`: checkpoint files (valid, damaged or set aside) and metrics."""
    run_dir = Path(run_dir)
    found = []
    checkpoints = run_dir / CHECKPOINTS
    if checkpoints.is_dir() and not checkpoints.is_symlink():
        found += sorted(
            f"{CHECKPOINTS}/{p.name}"
            for p in checkpoints.iterdir()
            if parse_name(p) is not None or CORRUPT_SUFFIX in p.name
        )
    found += [name for name in METRIC_OUTPUTS if os.path.lexists(run_dir / name)]
    return found


def refuse_or_move_aside(run_dir: Path | str, overwrite: bool, run: str | None) -> Path | None:
    """Before a fresh start: nothing to lose → None; `overwrite` → the old outputs moved aside (the folder); else raise.

    `run` names the earlier run (its id) for the message, when known.
    """
    run_dir = Path(run_dir)
    used = used_outputs(run_dir)
    if not used:
        return None
    if not overwrite:
        shown = ", ".join(used[:3]) + (f" and {len(used) - 3} more" if len(used) > 3 else "")
        raise RunDirInUseError(
            f"run dir {run_dir} already holds {f'run {run}' if run else 'an earlier run'}'s outputs ({shown}) and "
            f"this is a fresh start; resume it (resume='auto', --train.resume-from auto), pass a new run dir, or "
            f"overwrite (overwrite=True, --train.overwrite) to move them into {run_dir}/{PREVIOUS_PREFIX}<time>/"
        )
    return move_aside(run_dir)


def move_aside(run_dir: Path) -> Path:
    """Move the run outputs of `run_dir` into a new `previous-<UTC time>` sub-folder; the folder."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target, count = run_dir / f"{PREVIOUS_PREFIX}{stamp}", 1
    while os.path.lexists(target):
        count += 1
        target = run_dir / f"{PREVIOUS_PREFIX}{stamp}-{count}"
    target.mkdir()
    for name in RUN_OUTPUTS:
        if os.path.lexists(run_dir / name):
            os.rename(run_dir / name, target / name)
    fsync_dir(target)
    fsync_dir(run_dir)
    log.warning("overwrite: moved the earlier run's outputs of %s into %s (nothing deleted)", run_dir, target)
    return target
