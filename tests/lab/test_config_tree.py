"""One config tree: each field marked traced or structural once, grids derived from it, old checkpoints still load."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from emergence.envs import EnvState
from emergence.errors import UsageError
from emergence.lab.agents import QUICK, PPOConfig
from emergence.lab.agents.config import STRUCTURAL_KEYS
from emergence.lab.agents.hyper import TRACED
from emergence.lab.config import PRESETS, lab_config
from emergence.lab.sweep.grid import parse_grid, run_config
from tests.helpers import TINY_LAB

MAIN_CHECKPOINT = Path(__file__).parent.parent / "fixtures" / "lab_checkpoint_main.safetensors"
"""A TINY_LAB run's final checkpoint (2 updates) written by the code at main before the selection world."""

OLD_QUICK = {
    "env": {
        "grid_size": 16,
        "max_agents": 32,
        "initial_agents": 8,
        "num_food": 20,
        "starting_energy": 200,
        "food_energy": 100,
        "reproduce_threshold": 120,
        "reproduce_cost": 50,
        "move_cost": 2,
        "living_cost": 1,
        "view_radius": 3,
        "max_steps": 500,
    },
    "num_envs": 8,
    "rollout_len": 32,
    "num_epochs": 4,
    "num_minibatches": 2,
    "lr": 0.001,
    "max_grad_norm": 0.5,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_eps": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "hidden_sizes": [64, 64],
    "evolution": True,
    "mutation_std": 0.02,
    "diversity_bonus": 0.1,
    "niche_pressure": 0.05,
    "eval_envs": 8,
    "eval_steps": 200,
}
"""`QUICK.to_dict()` as the code at main wrote it into checkpoints."""


def test_an_old_config_dict_loads_as_todays_quick_preset():
    assert PPOConfig.from_dict(OLD_QUICK) == QUICK


def test_the_world_state_keeps_the_fields_old_checkpoints_hold():
    assert [f.name for f in dataclasses.fields(EnvState)] == [
        "pos",
        "energy",
        "age",
        "alive",
        "uid",
        "parent_uid",
        "parent_slot",
        "founder",
        "generation",
        "food",
        "next_uid",
        "t",
    ]


def test_the_lab_config_and_the_learner_config_are_one_tree_both_ways():
    for name, preset in PRESETS.items():
        assert lab_config(preset.preset, preset.ppo_config(), preset.train) == preset, name


def test_a_grid_may_vary_exactly_the_traced_fields_including_the_worlds_values():
    config = PRESETS["selection"]
    grid = parse_grid(config, ["env.food_energy=100,30", "inherit_heads=1,0"], 1)
    foods = {run_config(config, run).env.food_energy for run in grid.runs(0)}
    assert foods == {100, 30} and set(TRACED.values()) >= {"env.food_energy", "evolution.train_heads"}
    with pytest.raises(UsageError, match="env.num_food is fixed for the whole compiled program"):
        parse_grid(config, ["env.num_food=10,20"], 1)
    assert STRUCTURAL_KEYS == {
        "num_envs",
        "hidden_sizes",
        "evolution",
        "env.grid_size",
        "env.max_agents",
        "env.view_radius",
    }


@pytest.mark.slow
def test_a_checkpoint_written_by_the_code_at_main_resumes(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "emergence.cli", "train", *TINY_LAB, "--train.total-steps", "24"]
        + ["--train.resume-from", str(MAIN_CHECKPOINT), "--train.run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stopped: max_steps at update 3" in result.stdout + result.stderr
