"""Resume through the checkpoint manager: whatever path a new user passes, the Trainer resumes from it."""

from __future__ import annotations

import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.errors import CheckpointNotFoundError
from emergence.testing import toy_task


def _fit(run_dir, max_steps, resume="auto"):
    trainer = Trainer(
        toy_task(), [CheckpointCallback(every_n_steps=5)], max_steps=max_steps, run_dir=run_dir, resume=resume
    )
    trainer.fit()
    return trainer


@pytest.mark.parametrize("given", ["run dir", "checkpoints dir", "file"])
def test_resume_from_a_run_dir_its_checkpoints_dir_or_a_file(tmp_path, given):
    first = _fit(tmp_path / "a", 10)
    source = {
        "run dir": tmp_path / "a",
        "checkpoints dir": tmp_path / "a" / "checkpoints",
        "file": first.last_checkpoint.path,
    }[given]
    second = _fit(tmp_path / "b", 15, resume=str(source))
    assert second.resumed_from.path == first.last_checkpoint.path and second.fit_start_step == 10
    assert second.step == 15 and (tmp_path / "b" / "checkpoints" / "final_step_15.safetensors").exists()
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").glob("*.safetensors")) == [
        "final_step_10.safetensors",
        "step_10.safetensors",
        "step_5.safetensors",
    ], "the run resumed from is only read"


def test_a_run_dir_without_checkpoints_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointNotFoundError) as caught:
        _fit(tmp_path / "b", 5, resume=str(tmp_path / "empty"))
    assert "\n" not in str(caught.value)


def test_every_save_goes_through_the_trainers_checkpoint_manager(tmp_path):
    trainer = _fit(tmp_path / "a", 10)
    assert trainer.checkpoints.latest == trainer.last_checkpoint
    assert not hasattr(trainer, "_collect_pending_save") and not hasattr(trainer, "_same_step_file")
