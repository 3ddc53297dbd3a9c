"""emergence: a Lightning-style training loop for JAX that survives preemptible GPUs.

The root is light: `Trainer`, `TrainState`, `Task` and `Callback` load when first
used, so a command that only reads a checkpoint or calls `kaggle` never imports JAX.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emergence.callbacks.base import Callback
    from emergence.inference import load_state
    from emergence.state import TrainState
    from emergence.task import Task
    from emergence.trainer import Trainer

_WHERE = {
    "Callback": "emergence.callbacks.base",
    "TrainState": "emergence.state",
    "Task": "emergence.task",
    "Trainer": "emergence.trainer",
    "load_state": "emergence.inference",
}

__all__ = ["Callback", "TrainState", "Task", "Trainer", "load_state"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'emergence' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
