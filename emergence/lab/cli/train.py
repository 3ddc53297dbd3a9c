"""`emergence train`: the foraging lab (PPO with evolution) under the Trainer, with the callbacks that keep it alive.

`--preset` gives every flag its default (see `emergence.lab.config`), `--platform` picks
the callback preset (`emergence.platforms.presets.for_platform`). The run prints where
it writes, a progress line now and then, and a summary; it exits 0 when it reached
`--train.total-steps` or its time budget, and 143 / 130 after an emergency checkpoint
on SIGTERM / SIGINT.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import jax

from emergence.cli.usage import UsageError, parse
from emergence.errors import CheckpointNotFoundError, ConfigMismatchError
from emergence.lab.config import PRESETS, LabConfig
from emergence.lab.report import summary
from emergence.lab.run import build_trainer, resolve_platform, trainer_devices


def preset_in(argv: Sequence[str]) -> str:
    """The `--preset` value on the command line (default quick); it sets every other flag's default."""
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--preset="):
            return arg.split("=", 1)[1]
    return "quick"


def parse_config(argv: Sequence[str]) -> LabConfig:
    """The `LabConfig` of a command line; bad usage is a one-line `UsageError`."""
    name = preset_in(argv)
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    config = parse(LabConfig, argv, prog="emergence train", default=PRESETS[name], description=__doc__.split("\n\n")[0])
    check(config)
    return config


def check(config: LabConfig) -> None:
    """Refuse settings no run can use, naming the flag, before anything is compiled or written."""
    train = config.train
    for name in ("total_steps", "save_interval", "keep_last", "num_envs", "steps_per_call", "log_interval"):
        if getattr(train, name) < 1:
            raise UsageError(f"--train.{name.replace('_', '-')} must be at least 1, got {getattr(train, name)}")
    for name in ("eval_interval", "track_interval"):
        if getattr(train, name) < 0:
            raise UsageError(
                f"--train.{name.replace('_', '-')} must be 0 (off) or positive, got {getattr(train, name)}"
            )
    trainer_devices(train.devices)
    if train.max_duration is not None and train.max_duration <= 0:
        raise UsageError(f"--train.max-duration must be positive seconds, got {train.max_duration}")
    if train.resume_from not in ("auto", "none") and not Path(train.resume_from).exists():
        raise CheckpointNotFoundError(
            f"--train.resume-from {train.resume_from}: nothing there; pass a checkpoint file or dir, 'auto' or 'none'"
        )
    try:
        config.ppo_config()
    except ValueError as err:  # e.g. num_envs not a multiple of num_minibatches
        raise UsageError(f"{err} (flags --train.num-envs, --ppo.*)") from None


def main(argv: list[str]) -> int:
    """`emergence train [FLAGS]`: train, print a summary, return the Trainer's exit code (128 + signum: a signal)."""
    config = parse_config(argv)
    platform = resolve_platform(config)
    trainer = build_trainer(config, platform)
    per_update, total = config.env_steps_per_update, config.train.total_steps
    print(
        f"emergence train: preset {config.preset} on {platform}, run dir {trainer.run_dir}; "
        f"{total:,} env steps = {config.updates(total):,} updates of {per_update:,} "
        f"({config.train.num_envs} worlds x {config.ppo.rollout_len} steps)",
        flush=True,
    )
    began = time.perf_counter()
    try:
        trainer.fit()
    except ConfigMismatchError as err:  # the Trainer names its argument; the user knows the flag
        raise ConfigMismatchError(str(err).replace("force_resume=True", "--train.force-resume")) from None
    jax.block_until_ready(trainer.state)
    print(summary(trainer, time.perf_counter() - began), flush=True)
    return trainer.exit_code
