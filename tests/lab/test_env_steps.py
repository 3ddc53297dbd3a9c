"""Env steps are counted as env steps in the state (issue 19, item 9): a resume that changes `--ppo.rollout-len`
reports and stops at the env steps actually taken; a checkpoint from before the count still resumes."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import read_checkpoint
from emergence.checkpoint.restore import restore_state
from emergence.lab.agents import PPOConfig, PPOTask
from emergence.lab.agents.env_steps import WORLD_STEPS, RunLength, env_steps_done, upgrade_world_steps
from tests.helpers import quick_compiles, tiny_ppo_config  # noqa: F401  (quick_compiles: a fixture, below)

pytestmark = pytest.mark.usefixtures("quick_compiles")

SMALL = tiny_ppo_config()


def _fit(config: PPOConfig, total_env_steps: int, run_dir, resume="auto") -> Trainer:
    per_update = config.num_envs * config.rollout_len
    trainer = Trainer(
        PPOTask(config),
        [CheckpointCallback(every_n_steps=1000)],  # and a final checkpoint at the end
        max_steps=RunLength(total_env_steps, per_update),
        run_dir=run_dir,
        resume=resume,
        progress=False,
    )
    trainer.fit()
    return trainer


@pytest.mark.slow  # fits of the PPO task: ~10 s each on one core
def test_a_resume_with_another_rollout_len_counts_and_stops_at_the_env_steps_taken(tmp_path):
    """20 env steps wanted: 2 updates of 2x4 (16 env steps), then updates of 2x8: one more ends the run at 32."""
    first = _fit(SMALL, 16, tmp_path, resume=None)
    assert (first.max_steps, first.step, env_steps_done(first.state)) == (2, 2, 16)
    longer = dataclasses.replace(SMALL, rollout_len=8)
    second = _fit(longer, 20, tmp_path)
    assert second.resumed_from.step == 2
    assert (second.max_steps, second.step, env_steps_done(second.state)) == (3, 3, 16 + 16)
    assert float(second.last_metrics["env/steps"]) == 32.0  # was (step + 1) * 16 = 48


@pytest.mark.slow  # fits of the PPO task: ~10 s each on one core
def test_a_fresh_run_is_as_long_as_before_and_a_finished_one_stops_at_once(tmp_path):
    per_update = SMALL.num_envs * SMALL.rollout_len
    length = RunLength(100, per_update)
    fresh = PPOTask(SMALL).init_state(jax.random.key(0))
    assert length(fresh) == -(-100 // per_update)  # ceil(100 / 8) = 13, as `updates(total_steps)` said
    done = _fit(SMALL, 16, tmp_path, resume=None)
    again = _fit(SMALL, 16, tmp_path)
    assert again.resumed_from.step == done.step == again.step == 2


@pytest.mark.slow  # fits of the PPO task: ~10 s each on one core
def test_a_checkpoint_from_before_the_count_resumes_with_every_update_rollout_len_long(tmp_path):
    trainer = _fit(SMALL, 16, tmp_path, resume=None)
    file = read_checkpoint(trainer.last_checkpoint.path)
    old = dataclasses.replace(file, arrays={k: v for k, v in file.arrays.items() if k != WORLD_STEPS})
    task = PPOTask(SMALL)
    restored = restore_state(task.init_state(jax.random.key(0)), old, task.upgrade_checkpoint)
    np.testing.assert_array_equal(np.asarray(restored.extra["world_steps"]), [8, 8])  # 2 updates x 4 steps, per world
    assert upgrade_world_steps(file.arrays, 4) is file.arrays  # a checkpoint with the count is left alone


def test_a_stacked_sweep_checkpoint_gets_one_count_per_run_and_world():
    arrays = {"step": np.asarray([3, 3]), "extra/env/t": np.zeros((2, 5), np.int32)}
    upgraded = upgrade_world_steps(arrays, 4)[WORLD_STEPS]
    assert upgraded.shape == (2, 5) and upgraded.dtype == np.int32 and (upgraded == 12).all()


def test_a_length_rule_that_returns_nonsense_is_a_one_line_error(tmp_path):
    trainer = Trainer(PPOTask(SMALL), max_steps=lambda state: 0, run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="max_steps must be a positive integer, got 0"):
        trainer.fit()
