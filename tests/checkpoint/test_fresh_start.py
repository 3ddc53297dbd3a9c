"""No silent destruction: a fresh start in a used run dir is refused, or (overwrite) moves the old outputs aside."""

from __future__ import annotations

import numpy as np
import pytest

from emergence.checkpoint import CheckpointManager, KeepLastN, list_checkpoints
from emergence.errors import RunDirInUseError


def _used_run_dir(run_dir):
    manager = CheckpointManager(run_dir, keep=[KeepLastN(2)], writer=False).open()
    manager.find_resume(None)
    for step in (19, 20):
        manager.save(step, {"w": np.zeros(4, np.float32)})
    manager.close()
    (run_dir / "metrics.csv").write_text("step,loss\n" + "".join(f"{s},0.1\n" for s in range(1, 21)))
    return manager


@pytest.mark.parametrize("resume", [None, "auto"])
def test_a_fresh_start_in_a_used_run_dir_is_a_one_line_error_with_the_choices(tmp_path, resume, damage):
    """Issue 19, item 3: resume-from none truncated metrics.csv and rotation deleted the new run's files."""
    old = _used_run_dir(tmp_path)
    if resume == "auto":  # "auto" finding nothing valid of this run is a fresh start too
        for ref in list_checkpoints(old.directory):
            damage(ref.path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    manager = CheckpointManager(tmp_path, writer=False).open()
    with pytest.raises(RunDirInUseError) as refused:
        manager.find_resume(resume)
    message = str(refused.value)
    assert "\n" not in message and f"run {old.run_id}'s outputs (checkpoints/step_19.safetensors" in message
    assert "resume it (resume='auto'" in message and "pass a new run dir" in message and "--train.overwrite" in message
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_overwrite_moves_the_old_outputs_into_a_dated_folder_and_deletes_nothing(tmp_path):
    old = _used_run_dir(tmp_path)
    (tmp_path / "notebook.ipynb").write_text("{}")  # not a run output: stays
    manager = CheckpointManager(tmp_path, keep=[KeepLastN(1)], writer=False).open(overwrite=True)
    assert manager.find_resume(None) is None and manager.run_id != old.run_id
    (previous,) = tmp_path.glob("previous-*")
    assert sorted(p.name for p in (previous / "checkpoints").glob("step_*")) == [
        "step_19.safetensors",
        "step_20.safetensors",
    ]
    assert (previous / "metrics.csv").read_text().count("\n") == 21 and (tmp_path / "notebook.ipynb").exists()
    manager.save(1, {"w": np.ones(4, np.float32)})
    assert [r.step for r in list_checkpoints(manager.directory)] == [1]
    manager.close()


def test_a_run_dir_with_nothing_to_lose_starts_fresh_without_a_word(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    manager = CheckpointManager(tmp_path, writer=False).open()
    assert manager.find_resume("auto") is None and manager.run_id is not None
    manager.close()


def test_resume_auto_in_a_used_run_dir_continues_the_run(tmp_path):
    old = _used_run_dir(tmp_path)
    manager = CheckpointManager(tmp_path, writer=False).open()
    assert manager.find_resume("auto").manifest["step"] == 20 and manager.run_id == old.run_id
