"""Resuming a sweep: the checkpoint found must be this sweep's (same grid and seeds), not another's or a single run's.

Checked before anything is written or compiled, by `emergence sweep` and the notebook.
"""

from __future__ import annotations

from emergence.checkpoint import resolve_checkpoint
from emergence.errors import UsageError
from emergence.lab.config import LabConfig
from emergence.lab.run import resume_source, run_dir


def check_resume(config: LabConfig, platform: str, wanted: dict) -> None:
    """Refuse, in one line and before anything is written, to resume a checkpoint of another sweep or a single run."""
    source = resume_source(config, platform)
    file = resolve_checkpoint(source, run_dir=run_dir(config, platform))
    if file is None:
        return
    path, saved = file.path, file.manifest["config"]
    if "sweep" not in saved:
        raise UsageError(
            f"{path} is a single run's checkpoint, not a sweep's; use another --train.run-dir "
            f"or --train.resume-from none"
        )
    had = {"sweep": saved["sweep"], "seeds": [run["seed"] for run in saved.get("runs", [])]}
    if had != wanted:
        raise UsageError(
            f"{path} belongs to another sweep ({_describe(had)}; this command asks for "
            f"{_describe(wanted)}): repeat its --sweep.grid/--sweep.seeds/--train.seed or use a new "
            f"--train.run-dir"
        )


def _describe(sweep: dict) -> str:
    grid = " ".join(f"{key}={','.join(f'{v:g}' for v in values)}" for key, values in sweep["sweep"]["grid"].items())
    return f"grid {grid or '(none)'}, seeds {sweep['seeds']}"
