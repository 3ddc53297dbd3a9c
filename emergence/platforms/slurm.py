"""SLURM's facts: a job has an id, and in recent versions its start and end as epoch seconds.

`SLURM_JOB_START_TIME` / `SLURM_JOB_END_TIME` bound the job; ask for `--signal=USR1@90`
to get a signal before the end (the signal callback catches SIGUSR1).
"""

from __future__ import annotations

import os


def on_slurm() -> bool:
    """`SLURM_JOB_ID` is set."""
    return "SLURM_JOB_ID" in os.environ


def slurm_job_start_time() -> float | None:
    """`SLURM_JOB_START_TIME` (epoch seconds) when the job has one."""
    return env_epoch("SLURM_JOB_START_TIME")


def slurm_job_end_time() -> float | None:
    """`SLURM_JOB_END_TIME` (epoch seconds) when the job has one."""
    return env_epoch("SLURM_JOB_END_TIME")


def env_epoch(variable: str) -> float | None:
    """An environment variable as epoch seconds; a one-line error when it is not a number."""
    value = os.environ.get(variable)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{variable}={value!r} is not epoch seconds; unset it or fix the job environment") from None
