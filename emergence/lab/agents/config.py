"""PPOConfig: every setting of the PPO learner as plain, JSON-able data, and its presets."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from emergence.envs import EnvParams


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Settings of `PPOTask`. `dataclasses.asdict` gives the nested JSON-able dict.

    One train_step collects `num_envs * rollout_len` env steps (each env step moves
    every alive agent of one world), then runs `num_epochs` passes over them in
    `num_minibatches` minibatches of whole environments (`num_envs` must divide).
    Evolution fields (`evolution`, `mutation_std`, `diversity_bonus`,
    `niche_pressure`, `inherit_heads`, `train_heads`) are described in `emergence.lab.agents.evolution` and docs/lab.md.
    """

    env: EnvParams = dataclasses.field(default_factory=EnvParams)
    num_envs: int = 32
    rollout_len: int = 64
    num_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 3e-4
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    hidden_sizes: tuple[int, ...] = (64, 64)
    evolution: bool = True
    mutation_std: float = 0.02
    diversity_bonus: float = 0.1
    niche_pressure: float = 0.05
    inherit_heads: float = 1.0
    train_heads: float = 1.0
    eval_envs: int = 8
    eval_steps: int = 200

    def __post_init__(self) -> None:
        if self.num_envs % self.num_minibatches:
            raise ValueError(
                f"num_envs={self.num_envs} must be a multiple of num_minibatches="
                f"{self.num_minibatches} (minibatches are groups of whole environments)"
            )
        if min(self.num_envs, self.rollout_len, self.num_epochs, self.eval_envs, self.eval_steps) < 1:
            raise ValueError("num_envs, rollout_len, num_epochs, eval_envs and eval_steps must be positive")
        if not self.hidden_sizes:
            raise ValueError("hidden_sizes needs at least one layer")

    @property
    def env_steps_per_update(self) -> int:
        """Env steps one train_step collects: num_envs * rollout_len."""
        return self.num_envs * self.rollout_len

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON types (tuples become lists), as saved in checkpoints."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PPOConfig":
        """Rebuild a config saved by `to_dict` (e.g. from a checkpoint's metadata)."""
        fields = dict(data)
        fields["env"] = EnvParams(**fields.get("env", {}))
        if "hidden_sizes" in fields:
            fields["hidden_sizes"] = tuple(fields["hidden_sizes"])
        return cls(**fields)


STRUCTURAL_KEYS = frozenset(
    {"num_envs", "hidden_sizes", "evolution", "env.grid_size", "env.max_agents", "env.view_radius"}
)
"""Dotted config keys that change array shapes in the TrainState: a checkpoint saved
under other values cannot be resumed."""

QUICK = PPOConfig(num_envs=8, rollout_len=32, num_minibatches=2, lr=1e-3)
"""The seed's world, small batches: visibly learns on a 2-core CPU in about two minutes."""
QUICK_ENV_STEPS = 128_000
"""Env steps of a `--preset quick` run: 500 train_steps of QUICK (docs/lab.md has timings)."""

KAGGLE = PPOConfig()
"""The seed's full run: 32 envs, 16x16 worlds of up to 32 agents."""
KAGGLE_ENV_STEPS = 10_000_000
"""Env steps of a `--preset kaggle` run (4883 train_steps of KAGGLE)."""

SELECTION_ENV = EnvParams(
    starting_energy=50,
    food_energy=40,
    reproduce_threshold=100,
    reproduce_cost=40,
    max_energy=200,
    food_regrowth=0.03,
    max_steps=1_000_000,
)
"""The seed's 16x16 world made scarce: food regrows (a missing item comes back with chance 0.03 a step),
energy has a ceiling, founders start below the breeding threshold, and the world goes on (reset only on
extinction), so the population lives below its cap and lineages outlive any episode."""

SELECTION = dataclasses.replace(QUICK, env=SELECTION_ENV)
"""`--preset selection`: QUICK's learner in the selection world (a CPU run of a few minutes)."""
SELECTION_ENV_STEPS = 128_000

SELECTION_KAGGLE = dataclasses.replace(KAGGLE, env=SELECTION_ENV)
"""`--preset selection-kaggle`: the Kaggle learner in the selection world (a 12 h T4 session)."""
SELECTION_KAGGLE_ENV_STEPS = 10_000_000
