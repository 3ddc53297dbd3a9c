"""Inference: a checkpoint loaded into a task's state, with no Trainer and no training.

`emergence.load_state(task, path)` builds the task's state (`init_state`, for its tree
structure and placement), reads and verifies the checkpoint (a file, a checkpoint
directory, or a run directory with `checkpoints/` inside: its newest valid file), checks
the config as resume does, and puts the saved arrays into the state. Then
`task.eval_step(state, batch)` (or the model's apply) runs as usual:

    state = emergence.load_state(MyTask(), "runs/mytask")
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax

from emergence.checkpoint.manifest import check_config
from emergence.checkpoint.resolve import resolve_checkpoint
from emergence.checkpoint.restore import restore_state
from emergence.task import checkpoint_upgrade, task_config


def load_state(task: Any, path: str | os.PathLike, *, force_resume: bool = False) -> Any:
    """The task's state as saved in the checkpoint `path` names (file, checkpoint dir or run dir).

    A missing or invalid checkpoint is a `CheckpointNotFoundError`; arrays that do not fit
    the task's state name the leaf and both shapes (`IncompatibleCheckpointError`); a
    changed structural config key is refused unless `force_resume`.
    """
    file = resolve_checkpoint(Path(path))  # the one answer to "which checkpoint does this path mean"
    check_config(
        file.manifest.get("config", {}), task_config(task), set(getattr(task, "structural_keys", ())), force_resume
    )
    fresh = task.init_state(jax.random.key(0))  # the tree, shapes and placement the saved arrays go into
    return restore_state(fresh, file, checkpoint_upgrade(task))
