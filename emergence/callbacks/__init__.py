"""Callbacks: one concern per file, each usable alone.

Names are imported lazily, so `from emergence.callbacks import CheckpointCallback`
does not pull in matplotlib, rich or tensorboardX.
"""

from __future__ import annotations

import importlib
from typing import Any

from emergence.callbacks.base import Callback

_WHERE = {
    "CheckpointCallback": "checkpoint",
    "SignalCheckpointCallback": "signals",
    "AtexitCheckpointCallback": "atexit_save",
    "OnExceptionCheckpointCallback": "on_exception",
    "TimeBudgetCallback": "time_budget",
    "KaggleTimeoutCallback": "time_budget",
    "LogThrottleCallback": "metrics_logger",
    "RichProgressCallback": "progress",
    "ArtifactExportCallback": "artifacts",
    "FinalizeCallback": "finalize",
    "TrackerCallback": "trackers",
    "WandbCallback": "wandb_run",
    "EarlyStoppingCallback": "early_stopping",
    "NonFiniteGuardCallback": "non_finite",
}

__all__ = ["Callback", *_WHERE]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'emergence.callbacks' has no attribute {name!r}")
    return getattr(importlib.import_module(f"emergence.callbacks.{_WHERE[name]}"), name)
