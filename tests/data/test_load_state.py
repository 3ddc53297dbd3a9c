"""emergence.load_state: a checkpoint loaded into a task's state for inference, without a Trainer."""

from __future__ import annotations

from pathlib import Path

import chex
import jax
import pytest

import emergence
from emergence.checkpoint import checkpoint_name, flatten_to_host, write_checkpoint
from emergence.checkpoint.manifest import build_manifest
from emergence.errors import CheckpointNotFoundError, ConfigMismatchError, IncompatibleCheckpointError
from emergence.task import task_config
from emergence.testing import toy_task


def trained_checkpoint(run_dir: Path, task, steps: int = 3):
    """Train `steps` steps by hand and write the state as the Trainer would: run_dir/checkpoints/step_N."""
    state = task.init_state(jax.random.key(1))
    step = jax.jit(task.train_step)
    for _ in range(steps):
        state, _ = step(state)
    arrays, typed_keys = flatten_to_host(state)
    manifest = build_manifest(
        step=steps,
        kind="periodic",
        reason=None,
        config=task_config(task),
        callbacks={},
        metrics={},
        typed_keys=typed_keys,
    )
    path = run_dir / "checkpoints" / checkpoint_name("periodic", steps)
    path.parent.mkdir(parents=True)
    write_checkpoint(path, arrays, manifest)
    return state, path


def test_load_state_gives_the_saved_state_from_a_file_a_checkpoint_dir_or_a_run_dir(tmp_path):
    task = toy_task()
    saved, path = trained_checkpoint(tmp_path / "run", task)
    for where in (path, path.parent, tmp_path / "run"):
        loaded = emergence.load_state(task, where)
        chex.assert_trees_all_equal(jax.random.key_data(loaded.rng), jax.random.key_data(saved.rng))
        chex.assert_trees_all_equal(loaded.replace(rng=None), saved.replace(rng=None))
    assert float(jax.jit(task.eval_step)(loaded)["val_loss"]) >= 0  # ready for inference as loaded


def test_load_state_says_what_is_wrong_in_one_line(tmp_path):
    _, path = trained_checkpoint(tmp_path / "run", toy_task())
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        emergence.load_state(toy_task(), tmp_path / "nowhere")
    with pytest.raises((IncompatibleCheckpointError, ConfigMismatchError)) as err:
        emergence.load_state(toy_task(hidden=(16,)), path)
    assert "\n" not in str(err.value)


def test_restore_checkpoint_before_fit_points_to_load_state(tmp_path):
    _, path = trained_checkpoint(tmp_path / "run", toy_task())
    with pytest.raises(ValueError, match=r"to load a checkpoint for inference, use emergence.load_state\(task, path\)"):
        emergence.Trainer(toy_task(), run_dir=tmp_path / "other").restore_checkpoint(path)
