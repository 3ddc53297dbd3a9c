"""Where am I running (local, Kaggle, Colab, SLURM), and what are my limits?

`detect()` reads documented signals only (each platform's module says which):
Kaggle's environment variables (never a folder alone), Colab's `COLAB_RELEASE_TAG`,
SLURM's `SLURM_JOB_ID`. `EMERGENCE_PLATFORM` forces a name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emergence.platforms.colab import CONTENT, on_colab
from emergence.platforms.kaggle import kaggle_interactive, kaggle_session_limit, kaggle_working, on_kaggle
from emergence.platforms.process import Accelerator, in_ipython_kernel, jax_accelerator, process_start_time
from emergence.platforms.slurm import on_slurm, slurm_job_end_time, slurm_job_start_time

NAMES = ("local", "kaggle", "colab", "slurm")

Name = Literal["local", "kaggle", "colab", "slurm"]


@dataclass(frozen=True)
class Platform:
    """What `detect()` found.

    Attributes:
        name: `local`, `kaggle`, `colab` or `slurm`.
        interactive: a person is watching a notebook (Kaggle "Interactive", Colab, a local
            Jupyter kernel), as opposed to a batch run (Kaggle "Save & Run All", sbatch).
        accelerator: `gpu`, `tpu` or `cpu`, as JAX sees it; `device_count` local devices.
        session_limit_seconds: how long the session may last (Kaggle 12 h, 9 h on TPU;
            SLURM end − start), or None when unknown.
        session_start: epoch seconds the session limit counts from (the process start,
            or `SLURM_JOB_START_TIME`).
        output_dir: where outputs survive the session (`/kaggle/working` on Kaggle).
    """

    name: Name
    interactive: bool
    accelerator: Accelerator
    device_count: int
    session_limit_seconds: float | None
    session_start: float
    output_dir: Path

    @property
    def deadline(self) -> float | None:
        """Epoch seconds at which the session ends, if its limit is known."""
        if self.session_limit_seconds is None:
            return None
        return self.session_start + self.session_limit_seconds


def detect() -> Platform:
    """The platform this process runs on (initialises JAX's backend to count devices)."""
    name = platform_name()
    accelerator, count = jax_accelerator()
    start, limit = process_start_time(), None
    if name == "kaggle":
        limit = kaggle_session_limit(accelerator)
    elif name == "slurm":
        start = slurm_job_start_time() or start
        end = slurm_job_end_time()
        limit = end - start if end is not None else None
    return Platform(
        name=name,
        interactive=_interactive(name),
        accelerator=accelerator,
        device_count=count,
        session_limit_seconds=limit,
        session_start=start,
        output_dir=output_dir_for(name),
    )


def platform_name() -> Name:
    """`EMERGENCE_PLATFORM` if set, else the first of kaggle, colab, slurm whose signals are present."""
    forced = os.environ.get("EMERGENCE_PLATFORM")
    if forced:
        if forced not in NAMES:
            raise ValueError(f"EMERGENCE_PLATFORM={forced!r} is not a platform; use one of {', '.join(NAMES)}")
        return forced  # type: ignore[return-value]
    if on_kaggle():
        return "kaggle"
    if on_colab():
        return "colab"
    if on_slurm():
        return "slurm"
    return "local"


def _interactive(name: str) -> bool:
    if name == "kaggle" and kaggle_interactive() is not None:
        return bool(kaggle_interactive())
    if name == "colab":
        return True
    if name == "slurm":
        return False
    return in_ipython_kernel()


def output_dir_for(name: str) -> Path:
    """Where outputs survive a session on platform `name` (`/kaggle/working`, `/content`, else the cwd)."""
    if name == "kaggle":
        return kaggle_working()
    if name == "colab":
        return CONTENT
    return Path.cwd()
