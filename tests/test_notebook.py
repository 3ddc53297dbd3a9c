"""notebooks/kaggle_training.ipynb executed headless in a real ipykernel against a fake Kaggle root.

The notebook reads `EMERGENCE_KAGGLE_ROOT`, so each test builds `<tmp>/kaggle/{working,input}`
and runs the notebook with tiny parameters injected into its `parameters` cell.
Resume discovery (`emergence.resume_search`) is tested directly first.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.resume_search import checkpoint_dirs, kaggle_resume_checkpoint, newest_valid_checkpoint
from emergence.testing import toy_task


def _fit(run_dir: Path, max_steps: int, resume="auto") -> Trainer:
    trainer = Trainer(toy_task(), [CheckpointCallback(every_n_steps=5, keep_last=10)], max_steps=max_steps,
                      run_dir=run_dir, resume=resume, async_checkpoint=False)
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkpoints/ of one toy run: step_5, step_10, step_15, final_step_15."""
    run = tmp_path_factory.mktemp("run")
    _fit(run, 15)
    return run / "checkpoints"


def _place(saved: Path, directory: Path, *names: str) -> Path:
    """Copy some of the saved checkpoints into `directory` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(saved / name, directory / name)
    return directory


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


# resume discovery

def test_resume_search_finds_a_previous_sessions_checkpoints_at_any_depth_and_changes_nothing(
        saved, tmp_path, read_only_dir):
    nested = tmp_path / "kaggle" / "input" / "notebooks" / "alice" / "emergence-training" / "checkpoints"
    _place(saved, nested, "step_5.safetensors", "step_10.safetensors")
    read_only_dir(tmp_path / "kaggle" / "input")
    before = _snapshot(tmp_path / "kaggle" / "input")
    assert checkpoint_dirs(tmp_path / "kaggle" / "input") == [nested]
    found = kaggle_resume_checkpoint(tmp_path / "kaggle")
    assert (found.path, found.kind, found.step) == (nested / "step_10.safetensors", "periodic", 10)
    trainer = _fit(tmp_path / "kaggle" / "working", 15, resume=found.path)
    assert (trainer.resumed_from.step, trainer.step) == (10, 15)
    assert (tmp_path / "kaggle" / "working" / "checkpoints" / "final_step_15.safetensors").is_file()
    assert _snapshot(tmp_path / "kaggle" / "input") == before


def test_resume_search_takes_the_newest_across_working_and_inputs(saved, tmp_path):
    working = _place(saved, tmp_path / "kaggle" / "working" / "checkpoints", "step_5.safetensors")
    _place(saved, tmp_path / "kaggle" / "input" / "run" / "checkpoints", "step_10.safetensors")
    assert kaggle_resume_checkpoint(tmp_path / "kaggle").step == 10
    _place(saved, working, "step_15.safetensors", "final_step_15.safetensors")
    found = kaggle_resume_checkpoint(tmp_path / "kaggle")
    assert (found.path, found.kind) == (working / "final_step_15.safetensors", "final")


def test_resume_search_prefers_working_on_a_tie_and_skips_damaged_files(saved, tmp_path):
    working = _place(saved, tmp_path / "kaggle" / "working" / "checkpoints", "step_10.safetensors")
    copy = _place(saved, tmp_path / "kaggle" / "input" / "copy", "step_10.safetensors")
    assert kaggle_resume_checkpoint(tmp_path / "kaggle").path == working / "step_10.safetensors"
    _corrupt(working / "step_10.safetensors")
    assert kaggle_resume_checkpoint(tmp_path / "kaggle").path == copy / "step_10.safetensors"


def test_resume_search_with_nothing_valid_starts_fresh(saved, tmp_path):
    assert kaggle_resume_checkpoint(tmp_path / "kaggle") is None
    damaged = _place(saved, tmp_path / "damaged", "step_5.safetensors", "step_10.safetensors")
    for path in damaged.iterdir():
        _corrupt(path)
    assert newest_valid_checkpoint([damaged]) is None
