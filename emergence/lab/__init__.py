"""The emergence lab: an application built on the framework, in its own house.

PPO with evolving per-agent heads on the foraging world (`agents/`), the trackers that
watch what emerges (`trackers/`, `tracking.py`), the lab's config and presets
(`config.py`), one run builder used by `emergence train` and the Kaggle notebook
(`run.py`), the end-of-run report (`report.py`) and the lab's commands (`cli/`).
The framework (`emergence.*` outside this folder) never imports it.
"""

from emergence.lab.config import PRESETS, LabConfig

__all__ = ["PRESETS", "LabConfig", "build_trainer"]


def __getattr__(name: str):
    if name == "build_trainer":  # builds a Trainer: loaded only when asked for
        from emergence.lab.run import build_trainer

        return build_trainer
    raise AttributeError(f"module 'emergence.lab' has no attribute {name!r}")
