"""Where a run is (local, Kaggle, Colab, SLURM): each platform's facts, detection, and its recommended callbacks.

A change to one platform's limits or paths touches one file here: `kaggle.py`,
`colab.py`, `slurm.py`; `process.py` holds what is true of any process (its start
time, whether a notebook runs it, what JAX sees); `detect.py` picks the platform;
`presets.py` the callbacks for it; `kaggle_workflow.py` drives the official `kaggle`
CLI. Importing this package does not import JAX.
"""

from emergence.platforms.detect import NAMES, Platform, detect, output_dir_for, platform_name
from emergence.platforms.kaggle import kaggle_resume_checkpoint, kaggle_root, kaggle_session_limit
from emergence.platforms.process import in_ipython_kernel, jax_accelerator, process_start_time
from emergence.platforms.slurm import slurm_job_end_time

__all__ = [
    "NAMES",
    "Platform",
    "detect",
    "for_platform",
    "in_ipython_kernel",
    "jax_accelerator",
    "kaggle_resume_checkpoint",
    "kaggle_root",
    "kaggle_session_limit",
    "output_dir_for",
    "platform_name",
    "process_start_time",
    "slurm_job_end_time",
]


def __getattr__(name: str):
    if name == "for_platform":  # presets build callbacks: loaded only when asked for
        from emergence.platforms.presets import for_platform

        return for_platform
    raise AttributeError(f"module 'emergence.platforms' has no attribute {name!r}")
