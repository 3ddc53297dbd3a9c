"""One run builder for the lab: a `LabConfig` and a platform become a `Trainer` with the callbacks that keep it alive.

`emergence train`, `emergence sweep` and the Kaggle notebook all call `build_trainer`,
so the callback list, the env-steps→updates conversion, the run dir and the resume
search are written once. Given a `Grid`, it builds the sweep of that grid (every run
vmapped in one `SweepTask`) under the same callbacks, with the sweep's metric sinks.

Everything here is lab policy on top of the framework's presets
(`emergence.platforms.presets.for_platform`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emergence.callbacks import TrackerCallback
from emergence.callbacks.base import Callback
from emergence.lab.agents import PPOTask
from emergence.lab.agents.env_steps import RunLength
from emergence.lab.config import LabConfig
from emergence.lab.event_count import EventCount
from emergence.lab.report import Throughput
from emergence.lab.sweep.grid import Grid, run_config
from emergence.lab.sweep.report import write_report
from emergence.lab.sweep.sinks import LongCSVSink, MeanCSVSink, RunTensorBoardSinks
from emergence.lab.sweep.task import Strategy, SweepTask
from emergence.lab.tracking import lab_trackers, policy_probe, sweep_probe, sweep_trackers
from emergence.metrics import CSVSink, TensorBoardSink
from emergence.platforms import jax_accelerator, kaggle_session_limit, platform_name
from emergence.platforms.kaggle import kaggle_resume_checkpoint, kaggle_working
from emergence.platforms.presets import for_platform, preset
from emergence.trainer import Trainer

MONITOR = "eval/food_per_agent_step"
PROGRESS_LINE_SECONDS = 15.0
SPARSE = ("env/age_at_death",)
"""Metrics that are NaN where a call has no value (no death): the logger leaves those out, never averages 0."""
SHOWN = ("env/food_per_agent_step", "env/population", "loss/total", MONITOR)
"""What the progress line shows of the logged metrics (all of them go to metrics.csv and TensorBoard)."""


def trainer_devices(flag: str) -> str | int | None:
    """`--train.devices` as the Trainer's `devices=`: None for 'one', 'all', or a positive count."""
    if flag in ("one", "all"):
        return None if flag == "one" else "all"
    if flag.isdigit() and int(flag) > 0:
        return int(flag)
    raise ValueError(f"--train.devices must be 'one', 'all' or a positive count, got {flag!r}")


def resolve_platform(config: LabConfig) -> str:
    """`--platform`, or the detected one for `auto`."""
    return platform_name() if config.platform == "auto" else config.platform


def run_dir(config: LabConfig, platform: str) -> Path:
    """`--train.run-dir`, else /kaggle/working on Kaggle and `<cwd>/runs/<preset>` elsewhere."""
    if config.train.run_dir is not None:
        return config.train.run_dir
    return kaggle_working() if platform == "kaggle" else Path.cwd() / "runs" / config.preset


def resume_source(config: LabConfig, platform: str) -> Any:
    """What the Trainer resumes from: 'auto', None or a path.

    On Kaggle 'auto' searches the run dir given (`run_dir`: `--train.run-dir`, else /kaggle/working)
    and the kernel's own previous output under /kaggle/input (`kaggle_resume_checkpoint`).
    """
    wanted = config.train.resume_from
    if wanted == "none":
        return None
    if wanted != "auto":
        return Path(wanted)
    if platform == "kaggle":
        found = kaggle_resume_checkpoint(run_dir=run_dir(config, platform))
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


def callbacks(config: LabConfig, platform: str, task: PPOTask | SweepTask, **overrides: Any) -> list[Callback]:
    """The platform's preset, with the flags' intervals (env steps → updates) and the lab's trackers added.

    Periodic saves come every `--train.save-interval` env steps (and, where the preset
    says so, every so many seconds); the best checkpoint is kept by eval food per agent
    step; metrics go to metrics.csv and TensorBoard, and the console shows a progress line.
    `overrides` go to `for_platform` last (the notebook's live display: `progress={}`).
    A `SweepTask` gets `sweep_sinks` instead of the single run's sinks, and the trackers of every run.
    """
    train, updates = config.train, config.updates
    evaluating = train.eval_interval > 0
    lab: dict[str, Any] = {
        "checkpoint": dict(
            every_n_steps=updates(train.save_interval),
            keep_last=train.keep_last,
            monitor=MONITOR if evaluating else None,
            mode="max",
            save_top_k=1 if evaluating else 0,
        ),
        "logging": dict(
            every_n_steps=updates(train.log_interval),
            sinks=[CSVSink(), TensorBoardSink()],
            sparse=SPARSE,
            max_rows_per_second=None,  # rows at exact update multiples: the report's windows count rows
        ),
        "progress": dict(plain_every_n_seconds=PROGRESS_LINE_SECONDS, metrics=SHOWN),
    }
    if train.max_duration is not None:
        lab["time_budget"] = time_budget(train.max_duration, platform)
    sweeping = isinstance(task, SweepTask)
    if sweeping:
        lab["logging"]["sinks"] = sweep_sinks(task)
        if "artifacts" in preset(platform):
            lab["artifacts"] = {"metrics_csv": "metrics_mean.csv"}  # the framework's curves of the mean over runs
        if "finalize" in preset(platform):
            lab["finalize"] = {"artifacts": (write_report,)}  # the report, before SHA256SUMS and outputs.zip
    extra: list[Callback] = [Throughput(config.env_steps_per_update * (task.num_seeds if sweeping else 1))]
    if train.wandb_project:
        from emergence.callbacks import WandbCallback  # wandb is an optional extra: imported only when asked for

        wandb = WandbCallback(project=train.wandb_project)
        lab["logging"]["sinks"] = [*lab["logging"]["sinks"], wandb.sink]
        extra.append(wandb)
    if train.track_interval > 0:
        trackers, probe = (
            (sweep_trackers(task.num_seeds), sweep_probe(task)) if sweeping else (lab_trackers(), policy_probe(task))
        )
        extra.append(TrackerCallback(updates(train.track_interval), trackers, probe=probe))
        extra.append(EventCount(trackers))  # after the sampler: the count it logs joins the next call's metrics
    merged = {
        key: {**lab[key], **value} if isinstance(value, dict) and key in lab else value
        for key, value in overrides.items()
    }
    return for_platform(platform, extra=extra, **{**lab, **merged})


def sweep_sinks(task: SweepTask) -> list[Any]:
    """A sweep's sinks: long-form metrics.csv, a TensorBoard dir per run, metrics_mean.csv (see `sweep.sinks`)."""
    return [LongCSVSink(task.runs), RunTensorBoardSinks(task.runs), MeanCSVSink()]


def sweep_task(config: LabConfig, grid: Grid, strategy: Strategy | None = None) -> SweepTask:
    """The `SweepTask` of `grid` over `config` (seeds from `--train.seed`; `strategy` overrides the grid's)."""
    runs = grid.runs(config.train.seed)
    configs = [run_config(config, run).ppo_config() for run in runs]
    return SweepTask(config.ppo_config(), grid, runs, configs, strategy or grid.strategy)


def build_trainer(
    config: LabConfig, platform: str | None = None, sweep: Grid | None = None, **overrides: Any
) -> Trainer:
    """The Trainer for a lab config on `platform` (default: detected), as `emergence train` and the notebook run it.

    PPOTask (or, given `sweep`, the `SweepTask` of that grid) under `callbacks(...)`
    (`overrides` reach `for_platform`), lengths and intervals converted from env steps
    to updates (a sweep's are per run), resuming as `train.resume_from` says.
    """
    platform = platform or resolve_platform(config)
    task = PPOTask(config.ppo_config()) if sweep is None else sweep_task(config, sweep)
    train, updates = config.train, config.updates
    return Trainer(
        task,
        callbacks(config, platform, task, **overrides),
        max_steps=RunLength(train.total_steps, config.env_steps_per_update),  # updates, once the state is known
        steps_per_call=train.steps_per_call,
        run_dir=run_dir(config, platform),
        resume=resume_source(config, platform),
        seed=train.seed,
        eval_every_n_steps=updates(train.eval_interval) if train.eval_interval > 0 else None,
        force_resume=train.force_resume,
        overwrite=train.overwrite,
        devices=trainer_devices(train.devices),
    )
