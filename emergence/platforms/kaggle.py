"""Kaggle's facts: where its root is, how long a session lasts, where an earlier session's output lands.

Kaggle sets `KAGGLE_KERNEL_RUN_TYPE` (`Interactive` or `Batch`), `KAGGLE_URL_BASE` and
`KAGGLE_DATA_PROXY_URL`, and mounts `/kaggle/working` (the only output that survives a
session). A session lasts 12 hours on CPU and GPU, 9 on TPU. `EMERGENCE_KAGGLE_ROOT`
(default `/kaggle`) moves the root so a fake one works in tests and local notebook runs.

A new session starts with an empty `/kaggle/working`; the previous session's output
comes back only when attached as an input (a kernel source), read-only, under
`/kaggle/input/<slug>` (or `/kaggle/input/notebooks/<owner>/<slug>`). Only that input, the
run's own source, named by the kernel's id, is resumed from: anything else attached there
(a dataset, another kernel's output) is never trusted to hold this run's next step. An
interrupted session restarted in place still has its own run dir's `checkpoints/`. The
newest valid file among them wins; the Trainer then writes to the run dir and never
touches the inputs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from emergence.errors import UsageError
from emergence.log import get_logger

log = get_logger("emergence.platforms")

HOUR = 3600.0
SESSION_LIMITS = {"tpu": 9 * HOUR, "gpu": 12 * HOUR, "cpu": 12 * HOUR}
ENV_VARS = ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE", "KAGGLE_DATA_PROXY_URL")
KERNEL_ENV = "EMERGENCE_KAGGLE_KERNEL"
"""This kernel's id (`owner/slug`): whose previous output a session resumes (Kaggle does not say it)."""
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


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


def own_inputs(kernel: str, root: Path | None = None) -> list[Path]:
    """Where Kaggle mounts kernel `owner/slug`'s output: `input/<slug>` or `input/notebooks/<owner>/<slug>`."""
    parts = str(kernel).split("/")
    if len(parts) != 2 or not all(_PLAIN.fullmatch(part) for part in parts):
        raise UsageError(
            f"kernel {kernel!r} must be this kernel's id 'owner/slug' (letters, digits, - and _), as in its "
            f"kernel-metadata.json; its previous version's output is resumed from /kaggle/input/<slug>"
        )
    owner, slug = parts
    inputs = (Path(root) if root is not None else kaggle_root()) / "input"
    return [inputs / slug, inputs / "notebooks" / owner / slug]


def kaggle_resume_checkpoint(root: Path | None = None, *, run_dir: Path | str | None = None, kernel: str | None = None):
    """The checkpoint a Kaggle session should resume from (a `CheckpointRef`), or None to start fresh.

    `resume="auto"` over the run dir (`run_dir`, default `<root>/working`: an interrupted
    session restarted in place; preferred on a tie) and the run's own source only: the
    previous version's output of `kernel` (`owner/slug`, default the `EMERGENCE_KAGGLE_KERNEL`
    environment variable) where Kaggle mounts it (`own_inputs`). Nothing else attached under
    `/kaggle/input` is searched: a `step_999999999` in any dataset must not win. When no kernel
    is named and checkpoints lie under `/kaggle/input`, a warning says how to name it.
    """
    from emergence.checkpoint.lineage import recorded_run_id
    from emergence.checkpoint.resolve import AUTO, CHECKPOINTS, checkpoint_dirs_under, file_ref, resolve_checkpoint

    root = Path(root) if root is not None else kaggle_root()
    run_dir = Path(run_dir) if run_dir is not None else root / "working"
    kernel = kernel or os.environ.get(KERNEL_ENV) or None
    roots = [path for path in own_inputs(kernel, root) if path.is_dir()] if kernel else []
    if kernel is None and (unsearched := checkpoint_dirs_under(root / "input")):
        log.warning(
            "not resuming from %s (and %d more under %s/input): resume reads only this run's own source; "
            "name this kernel (%s=owner/slug, or the notebook's `kernel` parameter) to resume its previous version",
            unsearched[0],
            len(unsearched) - 1,
            root,
            KERNEL_ENV,
        )
    found = resolve_checkpoint(AUTO, run_dir=run_dir, roots=roots, run_id=recorded_run_id(run_dir / CHECKPOINTS))
    if found is None:
        return None
    ref = file_ref(found)
    log.info("resuming from %s (step %d)", ref.path, ref.step)
    return ref
