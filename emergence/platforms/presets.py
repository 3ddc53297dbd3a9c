"""for_platform(): the recommended callback list for where the run is (Kaggle, Colab, SLURM, local).

    trainer = Trainer(task, for_platform(), max_steps=..., run_dir=detect().output_dir / "runs" / "mine")

Each entry of a preset has a key; `for_platform(name, **overrides)` takes, per key:

- a dict: arguments merged into the preset's (`checkpoint=dict(every_n_steps=1000)`), or,
  for a key the preset lacks, the arguments of a new one (`time_budget=dict(max_duration=3600)`);
- a `Callback`: used instead of the preset's (`signal=SignalCheckpointCallback(max_calls_in_flight=None)`);
- None: the entry is dropped (`logging=None`).

Keys, in list order: time_budget, checkpoint, logging, progress, artifacts, exception,
atexit, finalize, signal; `extra=[...]` callbacks go after them. The order does not
matter: callbacks only request saves and stops, the Trainer carries them out after all
of a call's hooks and writes the end checkpoint itself (tests/callbacks/test_order.py
runs every permutation of the Kaggle preset).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import emergence.callbacks as callbacks
from emergence.callbacks.base import Callback
from emergence.platforms.detect import NAMES, platform_name
from emergence.platforms.slurm import slurm_job_end_time

Spec = tuple[str, dict[str, Any]]

CLASSES = {
    "time_budget": "TimeBudgetCallback",
    "checkpoint": "CheckpointCallback",
    "logging": "LogThrottleCallback",
    "progress": "RichProgressCallback",
    "artifacts": "ArtifactExportCallback",
    "exception": "OnExceptionCheckpointCallback",
    "atexit": "AtexitCheckpointCallback",
    "finalize": "FinalizeCallback",
    "signal": "SignalCheckpointCallback",
}
ORDER = tuple(CLASSES)


def preset(name: str) -> dict[str, Spec]:
    """The preset for platform `name`: key → (class name in `emergence.callbacks`, arguments)."""
    survive = {
        "exception": ("OnExceptionCheckpointCallback", {}),
        "atexit": ("AtexitCheckpointCallback", {}),
        "signal": ("SignalCheckpointCallback", {}),
    }
    if name == "kaggle":
        return {
            "time_budget": ("KaggleTimeoutCallback", {}),
            "checkpoint": ("CheckpointCallback", {"every_n_seconds": 900.0, "keep_last": 3}),
            "logging": (
                "LogThrottleCallback",
                {"every_n_steps": 100, "every_n_seconds": 60.0, "background": True, "max_rows_per_second": 2.0},
            ),
            "artifacts": ("ArtifactExportCallback", {"every_n_seconds": 600.0}),  # under the run dir, as finalize
            "finalize": ("FinalizeCallback", {"zip_outputs": True}),
            **survive,
        }
    if name == "colab":
        return {
            "checkpoint": ("CheckpointCallback", {"every_n_seconds": 300.0, "keep_last": 3}),
            "logging": ("LogThrottleCallback", {"every_n_steps": 100, "every_n_seconds": 60.0}),
            "artifacts": ("ArtifactExportCallback", {"every_n_seconds": 600.0}),
            **survive,
        }
    if name == "slurm":
        budget = {"time_budget": ("TimeBudgetCallback", {"margin": 120.0})} if slurm_job_end_time() else {}
        return {
            **budget,
            "checkpoint": ("CheckpointCallback", {"every_n_seconds": 900.0, "keep_last": 3}),
            "logging": ("LogThrottleCallback", {"every_n_steps": 100}),
            **survive,
        }
    return {
        "checkpoint": ("CheckpointCallback", {"every_n_seconds": 600.0, "keep_last": 5}),
        "logging": ("LogThrottleCallback", {"every_n_steps": 100}),
        "exception": survive["exception"],
        "signal": survive["signal"],
    }


def for_platform(
    name: str | None = None, *, extra: Sequence[Callback] = (), **overrides: dict[str, Any] | Callback | None
) -> list[Callback]:
    """The recommended callbacks for platform `name` (default: detected), with `overrides` applied."""
    name = name or platform_name()
    if name not in NAMES:
        raise ValueError(f"unknown platform {name!r}; use one of {', '.join(NAMES)}")
    entries: dict[str, Spec | Callback] = dict(preset(name))
    for key, value in overrides.items():
        entries = _override(entries, key, value)
    return [*(_build(entries[key]) for key in ORDER if key in entries), *extra]


def _override(entries: dict[str, Spec | Callback], key: str, value: Any) -> dict[str, Spec | Callback]:
    if key not in CLASSES:
        raise ValueError(f"unknown preset entry {key!r}; use one of {', '.join(ORDER)}")
    if value is None:
        return {k: v for k, v in entries.items() if k != key}
    if isinstance(value, Callback):
        return {**entries, key: value}
    if not isinstance(value, dict):
        raise ValueError(f"{key}= takes a dict of arguments, a Callback or None, got {type(value).__name__}")
    class_name, arguments = entries.get(key) or (CLASSES[key], {})
    return {**entries, key: (class_name, {**arguments, **value})}


def _build(entry: Spec | Callback) -> Callback:
    if isinstance(entry, Callback):
        return entry
    class_name, arguments = entry
    return getattr(callbacks, class_name)(**arguments)
