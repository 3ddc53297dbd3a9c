"""Kaggle's facts: where its root is, how long a session lasts, where an earlier session's output lands.

Kaggle sets `KAGGLE_KERNEL_RUN_TYPE` (`Interactive` or `Batch`), `KAGGLE_URL_BASE` and
`KAGGLE_DATA_PROXY_URL`, and mounts `/kaggle/working` (the only output that survives a
session). A session lasts 12 hours on CPU and GPU, 9 on TPU. `EMERGENCE_KAGGLE_ROOT`
(default `/kaggle`) moves the root so a fake one works in tests and local notebook runs.

A new session starts with an empty `/kaggle/working`; the previous session's output
comes back only when attached as an input (a kernel source), read-only, somewhere under
`/kaggle/input` (its exact path depends on the slug and on Kaggle's layout, so it is
searched for, not assumed). An interrupted session restarted in place still has its own
`/kaggle/working/checkpoints`. The newest valid file among all of them wins; the
Trainer then writes to `/kaggle/working` and never touches the inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

from emergence.log import get_logger

log = get_logger("emergence.platforms")

HOUR = 3600.0
SESSION_LIMITS = {"tpu": 9 * HOUR, "gpu": 12 * HOUR, "cpu": 12 * HOUR}
ENV_VARS = ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE", "KAGGLE_DATA_PROXY_URL")


def kaggle_root() -> Path:
    """The Kaggle root: `EMERGENCE_KAGGLE_ROOT`, default `/kaggle`."""
    return Path(os.environ.get("EMERGENCE_KAGGLE_ROOT", "/kaggle"))


def on_kaggle() -> bool:
    """Kaggle's environment variables are set (a `/kaggle/working` folder alone proves nothing: anyone can make one)."""
    return any(v in os.environ for v in ENV_VARS)


def kaggle_interactive() -> bool | None:
    """True in an interactive session, False in "Save & Run All"; None when Kaggle does not say."""
    run_type = os.environ.get("KAGGLE_KERNEL_RUN_TYPE")
    return None if run_type is None else run_type == "Interactive"


def kaggle_working() -> Path:
    """`/kaggle/working`: what survives the session."""
    return kaggle_root() / "working"


def kaggle_session_limit(accelerator: str) -> float:
    """Kaggle's session limit: 12 hours on CPU and GPU, 9 hours on TPU."""
    return SESSION_LIMITS.get(accelerator, SESSION_LIMITS["cpu"])


def kaggle_resume_checkpoint(root: Path | None = None):
    """The checkpoint a Kaggle session should resume from (a `CheckpointRef`), or None to start fresh.

    `resume="auto"` with `<root>/working` as the run dir (its `checkpoints/`, preferred on a
    tie) and `<root>/input` as a read-only root searched in full; `root` defaults to
    `kaggle_root()`. The answer is the checkpoint package's one resolver.
    """
    from emergence.checkpoint.resolve import AUTO, file_ref, resolve_checkpoint

    root = Path(root) if root is not None else kaggle_root()
    found = resolve_checkpoint(AUTO, run_dir=root / "working", roots=[root / "input"])
    if found is None:
        return None
    ref = file_ref(found)
    log.info("resuming from %s (step %d)", ref.path, ref.step)
    return ref
