"""The run-dir lock in one process (two processes: tests/e2e/test_run_dir_lock.py)."""

from __future__ import annotations

import errno
import json
import logging
import os

import pytest

import emergence.checkpoint.lock as lock_module
from emergence.checkpoint import CheckpointManager
from emergence.checkpoint.lock import RunDirLock
from emergence.errors import RunDirError, RunDirLockedError


def _stale_temp(run_dir):
    temp = run_dir / "checkpoints" / ".tmp-step_1.safetensors.99.0123456789abcdef"
    temp.parent.mkdir(parents=True, exist_ok=True)
    temp.write_bytes(b"half")
    return temp


def test_the_lock_file_names_its_holder_and_close_releases_it(tmp_path):
    manager = CheckpointManager(tmp_path, writer=False).open()
    holder = json.loads((tmp_path / "run.lock").read_text())
    assert holder["pid"] == os.getpid() and holder["host"] and holder["started"].endswith("Z")
    with pytest.raises(RunDirLockedError, match=rf"in use by pid {os.getpid()} on host .* pass another run dir"):
        CheckpointManager(tmp_path, writer=False).open()  # a second writer, even in the same process
    manager.close()
    CheckpointManager(tmp_path, writer=False).open().close()


def test_a_manager_dropped_without_close_releases_the_run_dir(tmp_path):
    CheckpointManager(tmp_path, writer=False).open()  # a notebook cell that never closed it
    CheckpointManager(tmp_path, writer=False).open().close()


def test_a_process_that_does_not_write_takes_no_lock_and_cleans_nothing(tmp_path):
    temp = _stale_temp(tmp_path)
    with CheckpointManager(tmp_path, writer=False):
        reader = CheckpointManager(tmp_path, writer=False, writes=False).open()
        reader.close()
    assert not temp.exists()  # cleaned by the writer, under its lock


def test_without_a_working_flock_it_warns_once_goes_on_and_leaves_temp_files(tmp_path, monkeypatch, caplog):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", no_flock)
    temp = _stale_temp(tmp_path)
    with caplog.at_level(logging.WARNING, "emergence.checkpoint"):
        for _ in range(2):
            CheckpointManager(tmp_path, writer=False).open().close()
    warnings = [r.getMessage() for r in caplog.records if "no working flock" in r.getMessage()]
    assert len(warnings) == 1 and "run one at a time" in warnings[0]
    assert temp.exists()  # may be another writer's save in flight: not ours to delete


def test_a_lock_file_that_is_a_symlink_is_never_followed(tmp_path, victim):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.lock").symlink_to(victim)
    with pytest.raises(RunDirError, match="lock file .* must be a plain file"):
        RunDirLock(run_dir).acquire()
    assert victim.read_text() == "keep me"
