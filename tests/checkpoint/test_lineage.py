"""Lineage: rotation and `auto` count only this run's files; another run's file is never deleted or silently resumed."""

from __future__ import annotations

import logging
import shutil

import numpy as np

from emergence.checkpoint import CheckpointManager, KeepBestN, KeepLastN, list_checkpoints, read_manifest
from emergence.checkpoint.lineage import recorded_run_id


def _state(value: float = 0.0) -> dict:
    return {"w": np.full(4, value, np.float32)}


def _run(run_dir, steps, keep=2):
    """A finished session of one run: saves `steps`, closes; its manager."""
    manager = CheckpointManager(run_dir, keep=[KeepLastN(keep)], writer=False).open()
    manager.find_resume("auto")
    for step in steps:
        manager.save(step, _state(step))
    manager.close()
    return manager


def test_every_manifest_carries_the_run_id_and_a_resume_carries_it_on(tmp_path):
    first = _run(tmp_path / "a", [1, 2])
    assert recorded_run_id(tmp_path / "a" / "checkpoints") == first.run_id
    again = _run(tmp_path / "a", [3])
    assert again.run_id == first.run_id
    assert {read_manifest(r.path)["run_id"] for r in list_checkpoints(tmp_path / "a" / "checkpoints")} == {first.run_id}
    elsewhere = CheckpointManager(tmp_path / "b", writer=False).open()  # a new run dir resuming run a's file
    elsewhere.find_resume(tmp_path / "a")
    assert elsewhere.run_id == first.run_id and recorded_run_id(tmp_path / "b" / "checkpoints") == first.run_id


def test_a_foreign_runs_file_is_never_deleted_by_rotation_and_takes_no_slot(tmp_path):
    foreign = _run(tmp_path / "other", [50])
    _run(tmp_path / "run", [1])
    copied = shutil.copy(foreign.directory / "step_50.safetensors", tmp_path / "run" / "checkpoints")
    manager = CheckpointManager(tmp_path / "run", keep=[KeepLastN(1)], writer=False).open()
    assert manager.find_resume("auto").manifest["step"] == 1  # step_50 is another run's
    for step in (2, 3):
        manager.save(step, _state(step))
    assert [r.step for r in list_checkpoints(manager.directory)] == [3, 50]
    assert read_manifest(copied)["run_id"] == foreign.run_id


def test_auto_skips_a_foreign_file_with_a_warning_naming_both_runs(tmp_path, caplog):
    foreign = _run(tmp_path / "other", [50])
    own = _run(tmp_path / "run", [1])
    shutil.copy(foreign.directory / "step_50.safetensors", own.directory)
    with caplog.at_level(logging.WARNING, "emergence.checkpoint"):
        file = CheckpointManager(tmp_path / "run", writer=False).find_resume("auto")
    assert file.manifest["step"] == 1
    (warning,) = [r.getMessage() for r in caplog.records if "belongs to run" in r.getMessage()]
    assert foreign.run_id in warning and own.run_id in warning and "resume it by path to take it over" in warning


def test_a_file_named_by_path_is_taken_over_with_a_warning(tmp_path, caplog):
    foreign = _run(tmp_path / "other", [50])
    own = _run(tmp_path / "run", [1])
    manager = CheckpointManager(tmp_path / "run", writer=False).open()
    with caplog.at_level(logging.WARNING, "emergence.checkpoint"):
        assert manager.find_resume(foreign.directory / "step_50.safetensors").manifest["step"] == 50
    assert manager.run_id == foreign.run_id and f"was run {own.run_id}; continuing run {foreign.run_id}" in caplog.text


def test_best_k_ranks_and_deletes_only_this_runs_best_files(tmp_path):
    foreign = CheckpointManager(tmp_path / "other", writer=False).open()
    foreign.save(5, _state(), kind="best", metrics={"val": 0.0})
    foreign.close()
    shutil.copy(foreign.directory / "best_step_5.safetensors", tmp_path / "other_best.safetensors")
    manager = CheckpointManager(tmp_path / "run", keep=[KeepBestN("val", "min", n=1)], writer=False).open()
    manager.find_resume("auto")
    shutil.copy(tmp_path / "other_best.safetensors", manager.directory / "best_step_5.safetensors")
    assert manager.should_save_best({"val": 0.5})  # the foreign 0.0 takes no slot
    manager.save(10, _state(), kind="best", metrics={"val": 0.5})
    manager.save(20, _state(), kind="best", metrics={"val": 0.4})
    assert [r.step for r in list_checkpoints(manager.directory)] == [5, 20]


def test_files_written_before_lineage_are_adopted(tmp_path, place):
    place(tmp_path / "checkpoints", "step_4.safetensors", 4.0)  # no run_id in its manifest
    place(tmp_path / "checkpoints", "step_5.safetensors", 5.0)
    manager = CheckpointManager(tmp_path, keep=[KeepLastN(1)], writer=False).open()
    assert manager.find_resume("auto").manifest["step"] == 5
    manager.save(6, _state(6))
    assert [r.step for r in list_checkpoints(manager.directory)] == [6]
