"""Nothing read from a file names a path to write or delete; symlinks are never followed out of a checkpoint dir."""

from __future__ import annotations

import numpy as np

from emergence.checkpoint import CheckpointManager, CheckpointRef, KeepLastN, delete_checkpoint, list_checkpoints
from emergence.checkpoint.atomic import remove_stale_temp_files


def test_a_ref_whose_name_is_not_its_kind_and_step_deletes_nothing(tmp_path, victim):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for name in (str(victim), "../../victim"):  # a best list's name, read from a manifest
        delete_checkpoint(CheckpointRef(folder / name, "best", 3))
    assert victim.read_text() == "keep me"


def test_symlinks_out_of_the_checkpoint_dir_are_never_listed_read_or_rotated(tmp_path, place, caplog):
    outside = place(tmp_path / "elsewhere", "step_99.safetensors", 99.0)
    folder = tmp_path / "run" / "checkpoints"
    with CheckpointManager(tmp_path / "run", writer=False) as first:
        first.find_resume(None)
        first.save(1, {"w": np.zeros(4, np.float32)})
    (folder / "step_99.safetensors").symlink_to(outside)
    (folder / "step_98.safetensors").symlink_to(tmp_path / "missing")  # dangling
    (folder / "step_97.safetensors").symlink_to(folder / "step_97.safetensors")  # a loop
    assert [r.step for r in list_checkpoints(folder)] == [1]
    assert caplog.text.count("a symlink that does not lead to a checkpoint file") == 3
    manager = CheckpointManager(tmp_path / "run", keep=[KeepLastN(1)], writer=False).open()
    assert manager.find_resume("auto").manifest["step"] == 1
    for step in (2, 3):
        manager.save(step, {"w": np.zeros(4, np.float32)})
    assert outside.exists() and (folder / "step_99.safetensors").is_symlink()
    assert [r.step for r in list_checkpoints(folder)] == [3]


def test_temp_cleanup_removes_links_never_their_targets_and_skips_folders(tmp_path, victim):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".tmp-step_1.safetensors.1.00").symlink_to(victim)
    (folder / ".tmp-folder").mkdir()
    removed = remove_stale_temp_files(folder)
    assert [p.name for p in removed] == [".tmp-step_1.safetensors.1.00"]
    assert victim.read_text() == "keep me" and (folder / ".tmp-folder").is_dir()
