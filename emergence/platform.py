"""Where am I running (local, Kaggle, Colab, SLURM), and what are my limits?

`detect()` reads documented signals only: Kaggle sets `KAGGLE_KERNEL_RUN_TYPE`
(`Interactive` or `Batch`), `KAGGLE_URL_BASE` and `KAGGLE_DATA_PROXY_URL` and mounts
`/kaggle/working`; Colab sets `COLAB_RELEASE_TAG` (and `COLAB_GPU`); SLURM sets
`SLURM_JOB_ID` and, in recent versions, `SLURM_JOB_START_TIME` / `SLURM_JOB_END_TIME`
(epoch seconds). `EMERGENCE_PLATFORM` forces a name; `EMERGENCE_KAGGLE_ROOT` (default
`/kaggle`) moves the Kaggle root so a fake one works in tests and local notebook runs.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_IMPORTED_AT = time.time()

NAMES = ("local", "kaggle", "colab", "slurm")
HOUR = 3600.0
KAGGLE_LIMITS = {"tpu": 9 * HOUR, "gpu": 12 * HOUR, "cpu": 12 * HOUR}

Name = Literal["local", "kaggle", "colab", "slurm"]
Accelerator = Literal["gpu", "tpu", "cpu"]


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
        start = _env_epoch("SLURM_JOB_START_TIME") or start
        end = slurm_job_end_time()
        limit = end - start if end is not None else None
    return Platform(name=name, interactive=_interactive(name), accelerator=accelerator, device_count=count,
                    session_limit_seconds=limit, session_start=start, output_dir=output_dir_for(name))


def platform_name() -> Name:
    """`EMERGENCE_PLATFORM` if set, else the first of kaggle, colab, slurm whose signals are present."""
    forced = os.environ.get("EMERGENCE_PLATFORM")
    if forced:
        if forced not in NAMES:
            raise ValueError(f"EMERGENCE_PLATFORM={forced!r} is not a platform; use one of {', '.join(NAMES)}")
        return forced  # type: ignore[return-value]
    kaggle_vars = ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE", "KAGGLE_DATA_PROXY_URL")
    if any(v in os.environ for v in kaggle_vars) or (kaggle_root() / "working").is_dir():
        return "kaggle"
    if "COLAB_RELEASE_TAG" in os.environ or "COLAB_GPU" in os.environ:
        return "colab"
    if "SLURM_JOB_ID" in os.environ:
        return "slurm"
    return "local"


def kaggle_root() -> Path:
    """The Kaggle root: `EMERGENCE_KAGGLE_ROOT`, default `/kaggle`."""
    return Path(os.environ.get("EMERGENCE_KAGGLE_ROOT", "/kaggle"))


def kaggle_session_limit(accelerator: str) -> float:
    """Kaggle's session limit: 12 hours on CPU and GPU, 9 hours on TPU."""
    return KAGGLE_LIMITS.get(accelerator, KAGGLE_LIMITS["cpu"])


def slurm_job_end_time() -> float | None:
    """`SLURM_JOB_END_TIME` (epoch seconds) when the job has one."""
    return _env_epoch("SLURM_JOB_END_TIME")


def jax_accelerator() -> tuple[Accelerator, int]:
    """(`gpu` | `tpu` | `cpu`, local device count) of JAX's default backend."""
    import jax

    backend = jax.default_backend()
    kind = "tpu" if backend == "tpu" else "cpu" if backend == "cpu" else "gpu"
    return kind, jax.local_device_count()  # type: ignore[return-value]


def process_start_time() -> float:
    """Epoch seconds at which this process started.

    Read from `/proc/self/stat` (start in clock ticks after boot) and `/proc/stat`
    (boot time), good to about a second; where `/proc` is missing, the time
    `emergence.platform` was first imported.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


def in_ipython_kernel() -> bool:
    """True inside a Jupyter/IPython kernel (a notebook), where exiting the process is wrong."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _interactive(name: str) -> bool:
    if name == "kaggle" and "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        return os.environ["KAGGLE_KERNEL_RUN_TYPE"] == "Interactive"
    if name == "colab":
        return True
    if name == "slurm":
        return False
    return in_ipython_kernel()


def output_dir_for(name: str) -> Path:
    """Where outputs survive a session on platform `name` (`/kaggle/working`, `/content`, else the cwd)."""
    if name == "kaggle":
        return kaggle_root() / "working"
    if name == "colab":
        return Path("/content")
    return Path.cwd()


def _env_epoch(variable: str) -> float | None:
    value = os.environ.get(variable)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{variable}={value!r} is not epoch seconds; unset it or fix the job environment") from None
