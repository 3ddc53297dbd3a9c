"""Small helpers the tests share: run the toy trainer in a subprocess, compare checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import chex
import jax
import pytest

from emergence.checkpoint import read_checkpoint

SCRIPTS = Path(__file__).parent / "scripts"


def fit_toy_process(run_dir: Path, max_steps: int, *args: str) -> subprocess.Popen:
    """Start `tests/scripts/fit_toy.py` in a new process, stdout piped line by line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "fit_toy.py"), str(run_dir), str(max_steps), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_line(process: subprocess.Popen, prefix: str) -> str:
    """Read the process's stdout until a line starting with `prefix`; fail if it ends first."""
    for line in process.stdout:
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"process ended before printing {prefix!r}: {process.stderr.read()[-2000:]}")


def assert_same_arrays(path_a: Path, path_b: Path) -> None:
    """Both checkpoints hold bitwise-equal arrays under the same leaf paths."""
    chex.assert_trees_all_equal(read_checkpoint(path_a).arrays, read_checkpoint(path_b).arrays, strict=True)


TINY_LAB = (
    "--platform local --env.grid-size 6 --env.max-agents 6 --env.initial-agents 3 --env.num-food 5 "
    "--env.view-radius 1 --ppo.rollout-len 4 --ppo.num-epochs 1 --ppo.num-minibatches 1 --ppo.hidden-sizes 8 "
    "--ppo.eval-envs 2 --ppo.eval-steps 8 --train.num-envs 2"
).split()
"""Flags of a lab run (`emergence train` or `sweep`) that compiles in seconds: 8 env steps per update."""


def tiny_ppo_config():
    """`TINY_LAB` as a `PPOConfig`, for tests that build the lab's task in process (the lab imported only here)."""
    from emergence.envs import EnvParams
    from emergence.lab.agents import PPOConfig

    return PPOConfig(
        env=EnvParams(grid_size=6, max_agents=6, initial_agents=3, num_food=5, view_radius=1),
        num_envs=2,
        rollout_len=4,
        num_epochs=1,
        num_minibatches=1,
        hidden_sizes=(8,),
        eval_envs=2,
        eval_steps=8,
    )


def ckpt_diff(a: Path, b: Path) -> subprocess.CompletedProcess:
    """`emergence ckpt diff A B` as a user runs it, in its own process (exit 0: the arrays are bitwise equal)."""
    return subprocess.run(
        [sys.executable, "-m", "emergence.cli", "ckpt", "diff", str(a), str(b)], capture_output=True, text=True
    )


def manager_writer(run_dir: Path, *args: str, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    """Run `tests/scripts/manager_writer.py RUN_DIR ARGS` (saves through a CheckpointManager) in a new process.

    `wait=True`: run it to the end (a `CompletedProcess`, output captured); else the `Popen`, stdout piped.
    """
    command = [sys.executable, str(SCRIPTS / "manager_writer.py"), str(run_dir), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if wait:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


DECIDERS = ("time_budget", "checkpoint", "exception", "atexit", "signal")
"""The Kaggle preset's entries that save or stop (the rest, logging, artifacts and finalize, only observe)."""
OBSERVERS = ("logging", "artifacts", "finalize")


def preset_orders(every: int = 1) -> list[tuple[str, ...]]:
    """Orders of the Kaggle preset's eight entries: each of the 120 orders of the five that save or stop, with
    the three observers inserted at positions that move with the order's index (every `every`-th order).

    All 8! = 40,320 orders at ~0.13 s a run would take 85 minutes per case; an order can change an
    outcome only through which hook runs first, and these 120 put every decider before and after
    every other and each observer before, between and after them.
    """
    import itertools

    orders = []
    for index, deciders in enumerate(itertools.permutations(DECIDERS)):
        if index % every:
            continue
        order = list(deciders)
        for offset, observer in enumerate(OBSERVERS):
            order.insert((index // (offset + 1)) % (len(order) + 1), observer)
        orders.append(tuple(order))
    return orders


def kaggle_preset(order: tuple[str, ...], run_dir: Path, clock=None, budget: float = 3600.0) -> list:
    """`for_platform("kaggle")` at test intervals (a checkpoint every 5 steps, rows every 4, artifacts every 6
    steps, a `budget`-second time budget on `clock`), its callbacks in `order` (keys of the preset)."""
    from emergence.callbacks import TimeBudgetCallback
    from emergence.platforms.presets import ORDER, for_platform, preset

    time_budget = TimeBudgetCallback(max_duration=budget, margin=10, **({"clock": clock} if clock else {}))
    built = for_platform(
        "kaggle",
        time_budget=time_budget,
        checkpoint=dict(every_n_steps=5, every_n_seconds=None),
        logging=dict(every_n_steps=4, every_n_seconds=None, max_rows_per_second=None),
        artifacts=dict(output_dir=run_dir, every_n_steps=6, every_n_seconds=None),
    )
    by_key = dict(zip([key for key in ORDER if key in preset("kaggle")], built, strict=True))
    return [by_key[key] for key in order]


def tracker_pair() -> list:
    """An emergence tracker on the toy task's loss and grad norm, and a specialisation tracker."""
    from emergence.lab.trackers import EmergenceTracker, SpecializationTracker

    return [EmergenceTracker(["loss", "grad_norm"], window=3, k=1.0, sustain=1), SpecializationTracker()]


def probe(state) -> dict:
    """What the trackers sample of a toy-task state: its output layer as per-agent action counts and params."""
    kernel = state.params["params"]["Dense_1"]["kernel"]
    return {"action_counts": jax.numpy.abs(kernel) + 1e-3, "agent_params": kernel}


@pytest.fixture(scope="module")
def quick_compiles():
    """XLA without most optimisations while a module runs (import it into a module, autouse): compiling takes a
    third of the CPU time, and such modules test what programs compute, not how fast they run."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


CACHE = Path(tempfile.gettempdir()) / f"emergence-test-jax-cache-{os.getuid()}"


def emergence(*args: str, optimize: bool = False, devices: int = 1) -> subprocess.Popen:
    """`python -m emergence.cli ARGS` in a new process sharing the tests' JAX compile cache.

    Unless `optimize`, XLA skips most optimisations: tiny runs compile in a third of the time.
    `devices` CPU devices are forced on the child (XLA's host platform device count).
    """
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "JAX_COMPILATION_CACHE_DIR": str(CACHE),
        **({"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"} if devices > 1 else {}),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "JAX_DISABLE_MOST_OPTIMIZATIONS": "0" if optimize else "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "emergence.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def newest_periodic_step(run_dir: Path) -> int:
    """The step of the newest periodic checkpoint on disk (`step_<N>.safetensors`), 0 if none."""
    return max(
        (int(p.stem.removeprefix("step_")) for p in (run_dir / "checkpoints").glob("step_*.safetensors")), default=0
    )


GRID = ["--sweep.grid", "diversity_bonus=0,0.05", "--sweep.grid", "niche_pressure=0,0.05", "--sweep.seeds", "2"]
"""A 2x2 sweep grid of 2 seeds over the tiny lab (`TINY_LAB`): 8 runs."""
