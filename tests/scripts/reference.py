"""In-process runs that a killed child's checkpoints are checked against.

`train_subprocess.py` trains `ScriptTask`; the same task run here, straight or resumed
from the child's run dir, must reach bitwise-identical states.
"""

from __future__ import annotations

import json
from pathlib import Path

import chex
import numpy as np

from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import CheckpointRef, flatten_to_host, list_checkpoints, read_checkpoint
from emergence.checkpoint.atomic import TEMP_PREFIX
from tests.helpers import assert_same_arrays
from tests.scripts.train_subprocess import ScriptTask


def fit_here(run_dir: Path, max_steps: int, hidden: tuple[int, ...] = (8,), resume: str | None = "auto") -> Trainer:
    """Train `ScriptTask` in this process to `max_steps` (ending with a final checkpoint)."""
    trainer = Trainer(
        ScriptTask(hidden), [CheckpointCallback(keep_last=1)], max_steps=max_steps, run_dir=run_dir, resume=resume
    )
    trainer.fit()
    return trainer


class _Record(Callback):
    def __init__(self) -> None:
        self.states: dict[int, dict[str, np.ndarray]] = {}

    def on_train_call_end(self, trainer, metrics) -> None:
        self.states[trainer.step] = flatten_to_host(trainer.state)[0]


def record_states(run_dir: Path, max_steps: int, hidden: tuple[int, ...] = (8,)) -> dict[int, dict[str, np.ndarray]]:
    """An uninterrupted run's state after every step, as the flat host arrays a checkpoint stores."""
    recorder = _Record()
    Trainer(ScriptTask(hidden), [recorder], max_steps=max_steps, run_dir=run_dir, resume=None).fit()
    return recorder.states


def assert_holds(expected: dict[str, np.ndarray], path: Path) -> None:
    """The checkpoint at `path` holds exactly `expected`: same leaves, dtypes and bits."""
    chex.assert_trees_all_equal(read_checkpoint(path).arrays, expected, strict=True)


def assert_resume_is_exact(run_dir: Path, tmp_path: Path, max_steps: int, hidden: tuple[int, ...] = (8,)) -> Trainer:
    """Resume `run_dir` to `max_steps`; its final state equals a straight run's, bitwise."""
    resumed = fit_here(run_dir, max_steps, hidden)
    straight = fit_here(tmp_path / f"straight_{max_steps}", max_steps, hidden, resume=None)
    assert_same_arrays(straight.last_checkpoint.path, resumed.last_checkpoint.path)
    return resumed


def assert_directory_consistent(checkpoint_dir: Path, temps_allowed: bool = False) -> list[CheckpointRef]:
    """Every checkpoint-named file verifies, `latest.json` names one of them, no temp file is left.

    `temps_allowed`: a process killed mid-write leaves its temp file (never loaded, removed
    by the next start). Returns the checkpoints, oldest first.
    """
    refs = list_checkpoints(checkpoint_dir)
    for ref in refs:
        read_checkpoint(ref.path)
    latest = checkpoint_dir / "latest.json"
    if latest.exists():
        pointer = json.loads(latest.read_text())
        assert pointer["name"] in {ref.path.name for ref in refs}, f"latest.json names a missing file: {pointer}"
        assert read_checkpoint(checkpoint_dir / pointer["name"]).checksum == pointer["checksum"]
    temps = sorted(p.name for p in checkpoint_dir.glob(f"{TEMP_PREFIX}*"))
    assert temps_allowed or not temps, f"temp files left behind: {temps}"
    return refs
