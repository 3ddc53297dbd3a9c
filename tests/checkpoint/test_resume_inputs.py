"""Resume from other places and refuse bad input before anything on disk changes."""

from __future__ import annotations

import hashlib

import jax.numpy as jnp
import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.errors import (
    CheckpointNotFoundError,
    ConfigMismatchError,
    CorruptCheckpointError,
    IncompatibleCheckpointError,
    RunDirError,
)
from emergence.testing import toy_task
from tests.helpers import assert_same_arrays


def _snapshot(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _fit(run_dir, max_steps, task=None, **kwargs):
    trainer = Trainer(
        task or toy_task(),
        [CheckpointCallback(every_n_steps=10, keep_last=1)],
        max_steps=max_steps,
        run_dir=run_dir,
        **kwargs,
    )
    trainer.fit()
    return trainer


def test_resume_from_a_read_only_dir_writes_elsewhere_and_changes_nothing(tmp_path, read_only_dir):
    _fit(tmp_path / "session1", 20)
    source = read_only_dir(tmp_path / "session1" / "checkpoints")
    before = _snapshot(source)
    trainer = _fit(tmp_path / "session2", 40, resume=source)
    assert trainer.resumed_from.step == 20
    assert _snapshot(source) == before
    straight = _fit(tmp_path / "straight", 40, resume=None)
    assert_same_arrays(straight.last_checkpoint.path, trainer.last_checkpoint.path)


def test_read_only_run_dir_is_refused_before_training(tmp_path, read_only_dir):
    locked = read_only_dir(tmp_path / "locked")
    trainer = Trainer(toy_task(), [CheckpointCallback()], max_steps=5, run_dir=locked / "run")
    with pytest.raises(RunDirError, match="not writable.*pass a writable run_dir"):
        trainer.fit()
    assert trainer.step == 0 and trainer.state is None


def test_resume_from_empty_or_missing_path_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointNotFoundError, match="no valid checkpoint in .*empty"):
        _fit(tmp_path / "run", 5, resume=tmp_path / "empty")
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        _fit(tmp_path / "run", 5, resume=tmp_path / "missing")


def test_resume_from_a_pickle_file_is_refused(tmp_path):
    bad = tmp_path / "model.pkl"
    bad.write_bytes(b"\x80\x04\x95\x00")
    with pytest.raises(CorruptCheckpointError, match="pickle"):
        _fit(tmp_path / "run", 5, resume=bad)


def test_structural_config_change_is_refused_unless_forced(tmp_path):
    _fit(tmp_path / "run", 10)
    with pytest.raises(ConfigMismatchError, match=r"hidden: \[8\] -> \[16\].*force_resume=True"):
        _fit(tmp_path / "run", 20, task=toy_task(hidden=(16,)))
    with pytest.raises(IncompatibleCheckpointError, match=r"leaf 'params/params/Dense_0/bias'.*\[16\].*\[8\]"):
        _fit(tmp_path / "run", 20, task=toy_task(hidden=(16,)), force_resume=True)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "final_step_10.safetensors",
        "latest.json",
        "run.json",
        "step_10.safetensors",
    ]


def test_non_structural_config_change_is_listed_and_allowed(tmp_path, caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="emergence")
    _fit(tmp_path / "run", 10)
    trainer = _fit(tmp_path / "run", 20, task=toy_task(learning_rate=1e-4))
    assert trainer.resumed_from.step == 10
    assert "learning_rate: 0.003 -> 0.0001" in caplog.text


def test_bf16_state_resumes(tmp_path):
    first = _fit(tmp_path / "run", 10, task=toy_task(dtype="bfloat16"))
    assert first.state.params["params"]["Dense_0"]["kernel"].dtype == jnp.bfloat16
    trainer = _fit(tmp_path / "run", 20, task=toy_task(dtype="bfloat16"))
    assert trainer.resumed_from.step == 10 and trainer.state.params["params"]["Dense_0"]["kernel"].dtype == jnp.bfloat16
