"""PPOConfig: every setting of the PPO learner as plain, JSON-able data, and its presets."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from emergence.envs import EnvParams
from emergence.envs.params import field_kind


def setting(
    default: Any = dataclasses.MISSING, *, group: str, kind: str = "static", lab_name: str = "", **kw: Any
) -> Any:
    """A `PPOConfig` field with its place in the one config tree, in its metadata.

    `group`: the `emergence train` group it is set in (`train`, `ppo`, `evolution`; "" for
    a top-level entry, the world `env`, itself a group of `EnvParams` fields), and
    `lab_name` its name there (default: the field's); `kind`: `traced` (a per-run value a
    sweep may vary, read from `hyper`), `structural` (changes the TrainState's shapes: a
    checkpoint under another value cannot be resumed) or `static` (fixed for one compiled
    program). What a grid may vary and what a resume checks are derived from these marks.
    """
    metadata = {"group": group, "kind": kind, "lab_name": lab_name}
    return dataclasses.field(default=default, metadata=metadata, **kw)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Settings of `PPOTask`. `dataclasses.asdict` gives the nested JSON-able dict.

    One train_step collects `num_envs * rollout_len` env steps (each env step moves
    every alive agent of one world), then runs `num_epochs` passes over them in
    `num_minibatches` minibatches of whole environments (`num_envs` must divide).
    Evolution fields (`evolution`, `mutation_std`, `diversity_bonus`,
    `niche_pressure`, `inherit_heads`, `train_heads`) are described in
    `emergence.lab.agents.evolution` and docs/lab.md. Each field says in its metadata
    where `emergence train` sets it and whether it is traced or structural (`setting`).
    """

    env: EnvParams = setting(group="", default_factory=EnvParams)  # a group of its own: `--env.*`
    num_envs: int = setting(32, group="train", kind="structural")
    rollout_len: int = setting(64, group="ppo")
    num_epochs: int = setting(4, group="ppo")
    num_minibatches: int = setting(4, group="ppo")
    lr: float = setting(3e-4, group="ppo", kind="traced")
    max_grad_norm: float = setting(0.5, group="ppo", kind="traced")
    gamma: float = setting(0.99, group="ppo", kind="traced")
    gae_lambda: float = setting(0.95, group="ppo", kind="traced")
    clip_eps: float = setting(0.2, group="ppo", kind="traced")
    ent_coef: float = setting(0.01, group="ppo", kind="traced")
    vf_coef: float = setting(0.5, group="ppo", kind="traced")
    hidden_sizes: tuple[int, ...] = setting((64, 64), group="ppo", kind="structural")
    evolution: bool = setting(True, group="evolution", kind="structural", lab_name="enabled")
    mutation_std: float = setting(0.02, group="evolution", kind="traced")
    diversity_bonus: float = setting(0.1, group="evolution", kind="traced")
    niche_pressure: float = setting(0.05, group="evolution", kind="traced")
    inherit_heads: float = setting(1.0, group="evolution", kind="traced")
    train_heads: float = setting(1.0, group="evolution", kind="traced")
    eval_envs: int = setting(8, group="ppo")
    eval_steps: int = setting(200, group="ppo")

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


def lab_key(name: str) -> str:
    """The `emergence train` dotted key of a PPOConfig field (`lr` -> `ppo.lr`, `evolution` -> `evolution.enabled`)."""
    field = PPO_FIELDS[name]
    own = field.metadata["lab_name"] or name
    return f"{field.metadata['group']}.{own}" if field.metadata["group"] else own


def keys_of_kind(kind: str) -> dict[str, str]:
    """PPOConfig fields and EnvParams fields of `kind` (`traced`/`structural`) -> their dotted `emergence train` key.

    Env fields are named by their field name (`food_energy`), as a run's `hyper` holds them.
    """
    own = {name: lab_key(name) for name, f in PPO_FIELDS.items() if f.metadata.get("kind") == kind}
    env = {f.name: f"env.{f.name}" for f in dataclasses.fields(EnvParams) if field_kind(f) == kind}
    return own | env


PPO_FIELDS = {f.name: f for f in dataclasses.fields(PPOConfig)}

STRUCTURAL_KEYS = frozenset(name if name in PPO_FIELDS else f"env.{name}" for name in keys_of_kind("structural"))
"""Dotted config keys that change array shapes in the TrainState: a checkpoint saved
under other values cannot be resumed (derived from the fields' marks)."""

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
