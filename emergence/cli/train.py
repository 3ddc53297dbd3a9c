"""`emergence train`: the foraging lab (PPO with evolution) under the Trainer, with the callbacks that keep it alive.

`--preset` gives every flag its default (see `emergence.config`), `--platform` picks
the callback preset (`emergence.callbacks.presets.for_platform`). The run prints where
it writes, a progress line now and then, and a summary; it exits 0 when it reached
`--train.total-steps` or its time budget, and 143 / 130 after an emergency checkpoint
on SIGTERM / SIGINT.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from emergence import Callback, Trainer
from emergence.agents import PPOTask
from emergence.callbacks import TrackerCallback
from emergence.callbacks.presets import for_platform
from emergence.cli.report import Throughput, summary
from emergence.cli.tracking import lab_trackers, policy_probe
from emergence.cli.usage import UsageError, parse
from emergence.config import PRESETS, LabConfig
from emergence.errors import CheckpointNotFoundError, ConfigMismatchError
from emergence.metrics import CSVSink, TensorBoardSink
from emergence.platform import jax_accelerator, kaggle_root, kaggle_session_limit, platform_name
from emergence.resume_search import kaggle_resume_checkpoint

MONITOR = "eval/food_per_agent_step"
PROGRESS_LINE_SECONDS = 15.0
SHOWN = ("env/food_per_agent_step", "env/population", "loss/total", MONITOR)
"""What the progress line shows of the logged metrics (all of them go to metrics.csv and TensorBoard)."""


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
    config = parse(LabConfig, argv, prog="emergence train", default=PRESETS[name],
                   description=__doc__.split("\n\n")[0])
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
            raise UsageError(f"--train.{name.replace('_', '-')} must be 0 (off) or positive, got {getattr(train, name)}")
    trainer_devices(train.devices)
    if train.max_duration is not None and train.max_duration <= 0:
        raise UsageError(f"--train.max-duration must be positive seconds, got {train.max_duration}")
    if train.resume_from not in ("auto", "none") and not Path(train.resume_from).exists():
        raise CheckpointNotFoundError(f"--train.resume-from {train.resume_from}: nothing there; pass a checkpoint "
                                      f"file or dir, 'auto' or 'none'")
    try:
        config.ppo_config()
    except ValueError as err:  # e.g. num_envs not a multiple of num_minibatches
        raise UsageError(f"{err} (flags --train.num-envs, --ppo.*)") from None


def trainer_devices(flag: str) -> str | int | None:
    """`--train.devices` as the Trainer's `devices=`: None for 'one', 'all', or a positive count."""
    if flag in ("one", "all"):
        return None if flag == "one" else "all"
    if flag.isdigit() and int(flag) > 0:
        return int(flag)
    raise UsageError(f"--train.devices must be 'one', 'all' or a positive count, got {flag!r}")


def resolve_platform(config: LabConfig) -> str:
    """`--platform`, or the detected one for `auto`."""
    return platform_name() if config.platform == "auto" else config.platform


def run_dir(config: LabConfig, platform: str) -> Path:
    """`--train.run-dir`, else /kaggle/working on Kaggle and `<cwd>/runs/<preset>` elsewhere."""
    if config.train.run_dir is not None:
        return config.train.run_dir
    return kaggle_root() / "working" if platform == "kaggle" else Path.cwd() / "runs" / config.preset


def resume_source(config: LabConfig, platform: str) -> Any:
    """What the Trainer resumes from: 'auto', None or a path (on Kaggle, 'auto' also searches /kaggle/input)."""
    wanted = config.train.resume_from
    if wanted == "none":
        return None
    if wanted != "auto":
        return Path(wanted)
    if platform == "kaggle":
        found = kaggle_resume_checkpoint()
        return found.path if found is not None else None
    return "auto"


def time_budget(max_duration: float, platform: str) -> dict[str, float]:
    """Arguments of the preset's time budget for `--train.max-duration`, keeping a tenth of it in reserve.

    The reserve is at most the usual margin (60 s; 600 s on Kaggle). On Kaggle the entry is
    the `KaggleTimeoutCallback`, whose limit becomes the shorter of the flag and the session's.
    """
    if platform == "kaggle":
        session = kaggle_session_limit(jax_accelerator()[0])
        return {"limit": min(max_duration, session), "margin": min(600.0, max_duration / 10)}
    return {"max_duration": max_duration, "margin": min(60.0, max_duration / 10)}


def callbacks(config: LabConfig, platform: str, task: PPOTask) -> list[Callback]:
    """The platform's preset, with the flags' intervals (env steps → updates) and the lab's trackers added.

    Periodic saves come every `--train.save-interval` env steps (and, where the preset
    says so, every so many seconds); the best checkpoint is kept by eval food per agent
    step; metrics go to metrics.csv and TensorBoard, and the console shows a progress line.
    """
    train, updates = config.train, config.updates
    evaluating = train.eval_interval > 0
    overrides: dict[str, Any] = {
        "checkpoint": dict(every_n_steps=updates(train.save_interval), keep_last=train.keep_last,
                           monitor=MONITOR if evaluating else None, mode="max", save_top_k=1 if evaluating else 0),
        "logging": dict(every_n_steps=updates(train.log_interval), sinks=[CSVSink(), TensorBoardSink()]),
        "progress": dict(plain_every_n_seconds=PROGRESS_LINE_SECONDS, metrics=SHOWN),
    }
    if train.max_duration is not None:
        overrides["time_budget"] = time_budget(train.max_duration, platform)
    extra: list[Callback] = [Throughput(config.env_steps_per_update)]
    if train.track_interval > 0:
        extra.append(TrackerCallback(updates(train.track_interval), lab_trackers(), probe=policy_probe(task)))
    return for_platform(platform, extra=extra, **overrides)


def build(config: LabConfig, platform: str) -> Trainer:
    """The Trainer for a config: PPOTask under `callbacks(...)`, resuming as `--train.resume-from` says."""
    task = PPOTask(config.ppo_config())
    train, updates = config.train, config.updates
    return Trainer(task, callbacks(config, platform, task), max_steps=updates(train.total_steps),
                   steps_per_call=train.steps_per_call, run_dir=run_dir(config, platform),
                   resume=resume_source(config, platform), seed=train.seed,
                   eval_every_n_steps=updates(train.eval_interval) if train.eval_interval > 0 else None,
                   force_resume=train.force_resume, devices=trainer_devices(train.devices))


def main(argv: list[str]) -> int:
    """`emergence train [FLAGS]`: train, print a summary, return 0 (signals exit from inside fit)."""
    config = parse_config(argv)
    platform = resolve_platform(config)
    trainer = build(config, platform)
    per_update = config.env_steps_per_update
    print(f"emergence train: preset {config.preset} on {platform}, run dir {trainer.run_dir}; "
          f"{config.train.total_steps:,} env steps = {trainer.max_steps:,} updates of {per_update:,} "
          f"({config.train.num_envs} worlds x {config.ppo.rollout_len} steps)", flush=True)
    began = time.perf_counter()
    try:
        trainer.fit()
    except ConfigMismatchError as err:  # the Trainer names its argument; the user knows the flag
        raise ConfigMismatchError(str(err).replace("force_resume=True", "--train.force-resume")) from None
    jax.block_until_ready(trainer.state)
    print(summary(trainer, time.perf_counter() - began), flush=True)
    return 0
