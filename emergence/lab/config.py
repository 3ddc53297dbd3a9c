"""The configuration of `emergence train`: nested groups that tyro turns into flags.

    --preset quick|kaggle  --platform auto|local|kaggle|colab|slurm
    --train.*      the run: length, checkpoints, resume, intervals (in env steps)
    --env.*        the foraging world (`emergence.envs.EnvParams`)
    --ppo.*        the learner's hyperparameters
    --evolution.*  per-agent heads, mutation, diversity bonus, niche pressure

A preset is a complete `LabConfig`; flags override single fields of it. Lengths and
intervals are counted in *environment steps* (one step of one world), as RL papers
count them; the Trainer counts *updates* (train steps), each `num_envs * rollout_len`
env steps, and intervals are rounded up to whole updates. The learner's part becomes a
`PPOConfig` (`LabConfig.ppo_config()`), which is what checkpoints record; each PPOConfig
field names, in its metadata, its group and name here and whether it is traced or
structural (`emergence.lab.agents.config.setting`), so the two views never drift apart.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from emergence.envs import EnvParams
from emergence.lab.agents import PPOConfig
from emergence.lab.agents import config as learner
from emergence.lab.agents.config import PPO_FIELDS, lab_key

PresetName = Literal["quick", "kaggle", "selection", "selection-kaggle"]
PlatformName = Literal["auto", "local", "kaggle", "colab", "slurm"]


@dataclass(frozen=True)
class TrainSettings:
    """The run: how long, where, how often to save, evaluate and sample trackers."""

    run_dir: Path | None
    """where checkpoints, metrics and artifacts go (default: /kaggle/working on Kaggle, else ./runs/<preset>)"""
    total_steps: int
    """env steps to train, counted across resumes"""
    save_interval: int
    """env steps between periodic checkpoints"""
    keep_last: int
    """periodic checkpoints kept (best, emergency and final ones are kept apart)"""
    resume_from: str
    """'auto' (newest valid checkpoint; on Kaggle also under /kaggle/input), 'none', or a checkpoint file or dir"""
    num_envs: int
    """worlds simulated in parallel (changes the state's shapes: fixed for a run)"""
    steps_per_call: int
    """updates fused into one jitted call (hooks fire per call)"""
    eval_interval: int
    """env steps between greedy evaluations; the best checkpoint is kept by eval/food_per_agent_step (0: none)"""
    track_interval: int
    """env steps between samples of the emergence and specialisation trackers (0: no trackers)"""
    log_interval: int
    """env steps between metric rows (console, metrics.csv, TensorBoard)"""
    seed: int
    """seeds a fresh run (a resumed run continues its own random stream)"""
    max_duration: float | None
    """stop with a final checkpoint after this many seconds (Kaggle: its 12 h limit applies anyway)"""
    force_resume: bool
    """resume even if a structural setting (shapes) changed since the checkpoint"""
    devices: str
    """'one' (JAX's default device), 'all' (every local device: worlds split, e.g. Kaggle's two T4s) or a count N"""
    wandb_project: str | None = None
    """log to this Weights & Biases project too (pip install 'emergence[wandb]'; WANDB_MODE=offline works)"""


@dataclass(frozen=True)
class PPOSettings:
    """PPO hyperparameters (one update: rollout_len steps of num_envs worlds, then epochs of minibatches)."""

    rollout_len: int
    """env steps per world per update"""
    num_epochs: int
    """passes over each rollout"""
    num_minibatches: int
    """minibatches per pass, of whole worlds (must divide num_envs)"""
    lr: float
    """Adam learning rate"""
    max_grad_norm: float
    """global gradient-norm clip"""
    gamma: float
    """discount"""
    gae_lambda: float
    """GAE lambda"""
    clip_eps: float
    """PPO ratio (and value) clip"""
    ent_coef: float
    """entropy bonus weight"""
    vf_coef: float
    """value loss weight"""
    hidden_sizes: tuple[int, ...]
    """widths of the shared MLP trunk"""
    eval_envs: int
    """worlds per greedy evaluation"""
    eval_steps: int
    """steps per evaluation episode"""


@dataclass(frozen=True)
class EvolutionSettings:
    """Per-agent policy heads that children inherit with mutation (see emergence.lab.agents.evolution)."""

    enabled: bool
    """give every agent slot its own head (False: one shared policy)"""
    mutation_std: float
    """std of the Gaussian noise added to a parent's head at birth"""
    diversity_bonus: float
    """weight of the heads' weight diversity, subtracted from the loss"""
    niche_pressure: float
    """weight of behaviour similarity between agents, added to the loss"""
    inherit_heads: float = 1.0
    """1: a newborn takes its parent's head, mutated; 0: a fresh random head (a control arm)"""
    train_heads: float = 1.0
    """1: heads learn by gradient; 0: they change only by mutation and selection (a control arm)"""


@dataclass(frozen=True)
class LabConfig:
    """Everything `emergence train` needs; `--preset` picks the defaults of every other flag."""

    preset: PresetName
    """defaults for every flag: quick (a ~2 minute CPU run that learns), kaggle (10M env steps on a GPU), or
    selection / selection-kaggle (the same in a scarce, continuing world with births and deaths)"""
    platform: PlatformName
    """where this runs, which picks the survival callbacks (auto: detect)"""
    train: TrainSettings
    env: EnvParams
    ppo: PPOSettings
    evolution: EvolutionSettings

    def ppo_config(self) -> PPOConfig:
        """The learner's config (what checkpoints record): each PPOConfig field read from where its mark says."""
        return PPOConfig(**{name: self.get(lab_key(name)) for name in PPO_FIELDS})

    def get(self, dotted: str) -> Any:
        """The value at a dotted key (`ppo.lr`, `env`, `evolution.enabled`)."""
        value: Any = self
        for part in dotted.split("."):
            value = getattr(value, part)
        return value

    @property
    def env_steps_per_update(self) -> int:
        """Env steps one update collects: num_envs * rollout_len."""
        return self.train.num_envs * self.ppo.rollout_len

    def updates(self, env_steps: int) -> int:
        """`env_steps` as whole updates, rounded up (at least one)."""
        return max(1, math.ceil(env_steps / self.env_steps_per_update))


def lab_config(preset: PresetName, ppo: PPOConfig, train: TrainSettings) -> LabConfig:
    """A `LabConfig` from a learner config and run settings (the num_envs of `ppo` wins)."""
    groups: dict[str, dict[str, Any]] = {"train": {}, "ppo": {}, "evolution": {}}
    for name in PPO_FIELDS:
        group, _, lab_name = lab_key(name).rpartition(".")
        if group:
            groups[group][lab_name] = getattr(ppo, name)
    return LabConfig(
        preset=preset,
        platform="auto",
        train=dataclasses.replace(train, **groups["train"]),
        env=ppo.env,
        ppo=PPOSettings(**groups["ppo"]),
        evolution=EvolutionSettings(**groups["evolution"]),
    )


def _train(total: int, save: int, eval_: int, track: int, log: int, keep_last: int, devices: str) -> TrainSettings:
    return TrainSettings(
        run_dir=None,
        total_steps=total,
        save_interval=save,
        keep_last=keep_last,
        resume_from="auto",
        num_envs=0,
        steps_per_call=1,
        eval_interval=eval_,
        track_interval=track,
        log_interval=log,
        seed=0,
        max_duration=None,
        force_resume=False,
        devices=devices,
    )


def _cpu(total: int) -> TrainSettings:
    """A CPU run's schedule (quick, selection)."""
    return _train(total, save=12_800, eval_=32_000, track=2_560, log=6_400, keep_last=3, devices="one")


def _gpu(total: int) -> TrainSettings:
    """A Kaggle GPU session's schedule (kaggle, selection-kaggle)."""
    return _train(total, save=100_000, eval_=250_000, track=20_480, log=51_200, keep_last=5, devices="all")


PRESETS: dict[str, LabConfig] = {
    "quick": lab_config("quick", learner.QUICK, _cpu(learner.QUICK_ENV_STEPS)),
    "kaggle": lab_config("kaggle", learner.KAGGLE, _gpu(learner.KAGGLE_ENV_STEPS)),
    "selection": lab_config("selection", learner.SELECTION, _cpu(learner.SELECTION_ENV_STEPS)),
    "selection-kaggle": lab_config(
        "selection-kaggle", learner.SELECTION_KAGGLE, _gpu(learner.SELECTION_KAGGLE_ENV_STEPS)
    ),
}
"""`--preset quick`: QUICK for QUICK_ENV_STEPS on a CPU; `--preset kaggle`: the seed's 10M-step run;
`selection` and `selection-kaggle`: the same learners in the scarce, continuing world (docs/lab.md)."""


def dotted_keys(config: LabConfig) -> list[str]:
    """Every settable leaf of a config by its dotted name (`evolution.diversity_bonus`, `env.num_food`, ...)."""
    keys = []
    for group in fields(config):
        value = getattr(config, group.name)
        if dataclasses.is_dataclass(value):
            keys += [f"{group.name}.{f.name}" for f in fields(value)]
        else:
            keys.append(group.name)
    return keys


def resolve_key(config: LabConfig, key: str) -> str:
    """`key` as a dotted name: itself, or the one dotted name it is an unambiguous suffix of.

    `diversity_bonus` means `evolution.diversity_bonus`; `-` and `_` are the same (flags use `-`).
    """
    wanted = key.replace("-", "_")
    keys = dotted_keys(config)
    if wanted in keys:
        return wanted
    matches = [k for k in keys if k.endswith("." + wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"config key {key!r} is ambiguous: it could be {' or '.join(matches)}; write it in full")
    raise ValueError(
        f"unknown config key {key!r}; use a dotted name such as evolution.diversity_bonus "
        f"(emergence train --help lists them)"
    )


def with_values(config: LabConfig, values: dict[str, object]) -> LabConfig:
    """`config` with each `values` key (a dotted name or an unambiguous suffix) set; unknown keys are one-line errors.

    A group's values are set together, so settings checked against each other (a
    world's `initial_agents` and `max_agents`) are checked once, all changed.
    """
    top: dict[str, object] = {}
    groups: dict[str, dict[str, object]] = {}
    for key, value in values.items():
        group, _, name = resolve_key(config, key).rpartition(".")
        if group:
            groups.setdefault(group, {})[name] = value
        else:
            top[name] = value
    changed = {group: dataclasses.replace(getattr(config, group), **named) for group, named in groups.items()}
    return dataclasses.replace(config, **top, **changed)
