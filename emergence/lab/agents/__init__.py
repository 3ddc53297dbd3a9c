"""Learners that plug into the Trainer as Tasks: PPO with evolution on the foraging world."""

from emergence.lab.agents.config import (
    KAGGLE,
    KAGGLE_ENV_STEPS,
    QUICK,
    QUICK_ENV_STEPS,
    SELECTION,
    SELECTION_ENV_STEPS,
    SELECTION_KAGGLE,
    SELECTION_KAGGLE_ENV_STEPS,
    STRUCTURAL_KEYS,
    PPOConfig,
)
from emergence.lab.agents.evaluation import (
    EpisodeLog,
    episode_metrics,
    evaluate,
    make_network,
    random_policy_metrics,
    run_episodes,
)
from emergence.lab.agents.ppo import PPOTask

__all__ = [
    "KAGGLE",
    "KAGGLE_ENV_STEPS",
    "QUICK",
    "QUICK_ENV_STEPS",
    "SELECTION",
    "SELECTION_ENV_STEPS",
    "SELECTION_KAGGLE",
    "SELECTION_KAGGLE_ENV_STEPS",
    "STRUCTURAL_KEYS",
    "EpisodeLog",
    "PPOConfig",
    "PPOTask",
    "episode_metrics",
    "evaluate",
    "make_network",
    "random_policy_metrics",
    "run_episodes",
]
