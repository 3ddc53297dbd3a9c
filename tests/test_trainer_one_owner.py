"""The Trainer through the run dir's one owner: a second writer and a fresh start in a used run dir change nothing."""

from __future__ import annotations

import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback, LogThrottleCallback
from emergence.checkpoint import CheckpointManager, list_checkpoints
from emergence.errors import RunDirInUseError, RunDirLockedError
from emergence.metrics.csv_sink import read_metrics_csv
from emergence.testing import toy_task


def _fit(run_dir, max_steps, **kwargs) -> Trainer:
    callbacks = [CheckpointCallback(every_n_steps=5, keep_last=2), LogThrottleCallback(every_n_steps=1)]
    trainer = Trainer(toy_task(), callbacks, max_steps=max_steps, run_dir=run_dir, async_checkpoint=False, **kwargs)
    trainer.fit()
    return trainer


def _rows(run_dir):
    return [int(row["step"]) for row in read_metrics_csv(run_dir / "metrics.csv")[1]]


def _files(run_dir):
    """Every output and its bytes (not run.lock: each writer that takes the lock writes itself in)."""
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} | {
        "run.lock": b""
    }


@pytest.fixture(scope="module")
def used(tmp_path_factory):
    """A run dir holding 20 steps: checkpoints and metrics.csv."""
    run_dir = tmp_path_factory.mktemp("used") / "run"
    _fit(run_dir, 20)
    return run_dir


def test_resume_none_in_a_used_run_dir_is_refused_and_nothing_changes(used):
    """Issue 19, item 3: resume None truncated metrics.csv to 6 rows and rotation deleted the new run's files."""
    before = _files(used)
    with pytest.raises(RunDirInUseError, match="resume it .* pass a new run dir, or overwrite"):
        _fit(used, 6, resume=None)
    assert _files(used) == before and _rows(used) == list(range(1, 21))


def test_overwrite_starts_fresh_and_moves_the_old_run_aside(used, tmp_path):
    import shutil

    run_dir = shutil.copytree(used, tmp_path / "run")
    trainer = _fit(run_dir, 6, resume=None, overwrite=True)
    assert trainer.resumed_from is None and _rows(run_dir) == list(range(1, 7))
    (previous,) = run_dir.glob("previous-*")
    assert _rows(previous) == list(range(1, 21))
    assert [r.step for r in list_checkpoints(run_dir / "checkpoints") if r.kind == "periodic"] == [5]
    again = _fit(run_dir, 8)  # "auto" continues the new run, not the old one
    assert again.resumed_from.step == 6 and _rows(run_dir) == list(range(1, 9))


def test_a_second_writer_is_refused_before_any_hook_and_nothing_changes(used):
    before = _files(used)
    with CheckpointManager(used, writer=False):  # another process's run, in effect (flock is per open file)
        with pytest.raises(RunDirLockedError, match="is in use by pid"):
            _fit(used, 30)
    assert _files(used) == before
