"""env_throughput: env steps per second of the foraging world alone, of a full PPO update, and of it in the Trainer.

    python bench/env_throughput.py [--rounds 3] [--rollout-len 64] [--quick]

For 32 and 256 worlds (`PPOConfig(num_envs=...)`, every other setting its default),
interleaved round by round:
  - world alone (the baseline): `emergence.envs.step` of every world, vmapped, with
    uniformly random actions and auto-reset, 256 steps fused in one jitted `lax.scan`:
    how fast the world itself runs;
  - PPO, jit loop: `PPOTask.train_step` (rollout with the policy, GAE, `num_epochs` x
    `num_minibatches` updates) under `jax.jit` with donated state, in a Python loop;
  - PPO, Trainer: the same step run by the Trainer with CheckpointCallback (every 5 min,
    none in the window), SignalCheckpointCallback and TimeBudgetCallback (12 h).
An env step is one step of one world (it moves every alive agent in it). The PPO rows
report env steps collected per second of training, learning included. Target: the
Trainer ≥ 0.97x the jit loop's speed, missed when the median per-round ratio is below
it by more than its noise (median absolute deviation, at least 0.01); the world-alone
ratio has no target (it says what learning costs). Compiled programs are shared through
JAX's persistent compilation cache, so the Trainer does not compile PPO a second time.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
from _common import Ratio, Window, exit_with, interleaved, machine, print_table, verdict

from emergence import Trainer
from emergence.callbacks import CheckpointCallback, SignalCheckpointCallback, TimeBudgetCallback
from emergence.envs import NUM_ACTIONS, EnvParams, reset_state, step
from emergence.lab.agents import PPOConfig, PPOTask

TARGET = 0.97
WORLDS = (32, 256)
WORLD_STEPS = 256
CACHE = os.path.join(tempfile.gettempdir(), f"emergence-bench-jax-cache-{os.getuid()}")


def world_runner(env: EnvParams, worlds: int, length: int) -> Callable[[], float]:
    """`length` steps of `worlds` worlds with random actions, one jitted scan; returns its seconds."""

    def one(carry: tuple, key: jax.Array) -> tuple[tuple, jax.Array]:
        state, eaten = carry
        key_act, key_step, key_reset = jax.random.split(key, 3)
        actions = jax.random.randint(key_act, (worlds, env.max_agents), 0, NUM_ACTIONS)
        _, after, reward, done, _ = jax.vmap(lambda k, s, a: step(k, s, a, env))(
            jax.random.split(key_step, worlds), state, actions
        )

        def reset_done() -> object:
            fresh = jax.vmap(lambda k: reset_state(k, env))(jax.random.split(key_reset, worlds))
            return jax.tree.map(
                lambda new, old: jnp.where(done.reshape(done.shape + (1,) * (old.ndim - 1)), new, old), fresh, after
            )

        return (jax.lax.cond(done.any(), reset_done, lambda: after), eaten + reward.sum()), None

    @jax.jit
    def rollout(state: object, round_: jax.Array) -> tuple:
        keys = jax.random.split(jax.random.fold_in(jax.random.key(1), round_), length)
        return jax.lax.scan(one, (state, jnp.float32(0)), keys)[0]

    state = jax.vmap(lambda k: reset_state(k, env))(jax.random.split(jax.random.key(0), worlds))
    rounds = iter(range(1_000_000))

    def run() -> float:
        start = time.perf_counter()
        jax.block_until_ready(rollout(state, next(rounds)))
        return time.perf_counter() - start

    run()  # compiles
    return run


def jit_runner(task: PPOTask, calls: int) -> Callable[[], float]:
    """`calls` PPO updates in a hand-written jit loop; returns their seconds (compiled before timing)."""
    update = jax.jit(task.train_step, donate_argnums=0)
    state, _ = update(task.init_state(jax.random.key(0)))
    jax.block_until_ready(state)

    def run() -> float:
        nonlocal state
        start = time.perf_counter()
        for _ in range(calls):
            state, _ = update(state)
        jax.block_until_ready(state)
        return time.perf_counter() - start

    return run


def trainer_runner(task: PPOTask, calls: int, run_dir: str) -> Callable[[], float]:
    """`calls` PPO updates run by the Trainer with the survival callbacks; the timed window's seconds."""
    window = Window()
    callbacks = [
        window,
        CheckpointCallback(every_n_seconds=300.0, save_final=False),
        SignalCheckpointCallback(),
        TimeBudgetCallback(max_duration=12 * 3600.0),
        window.opener,
    ]
    trainer = Trainer(task, callbacks, max_steps=1, run_dir=run_dir, resume=None)
    trainer.fit()  # compiles (or loads the jit loop's program from the cache)

    def run() -> float:
        trainer.max_steps = calls
        trainer.fit()
        return window.seconds

    return run


def measure(worlds: int, args: argparse.Namespace, work: str) -> list[list]:
    """The rows of one world count, from interleaved rounds."""
    config = PPOConfig(num_envs=worlds, rollout_len=args.rollout_len)
    task = PPOTask(config)
    cases = {
        "world alone, random actions (baseline)": world_runner(config.env, worlds, WORLD_STEPS),
        "PPO train_step, jit loop": jit_runner(task, args.calls),
        "PPO train_step, Trainer + survival callbacks": trainer_runner(task, args.calls, f"{work}/{worlds}"),
    }
    times = interleaved(cases, args.rounds)
    base, jit, trainer = list(cases)
    steps = {
        base: worlds * WORLD_STEPS,
        jit: config.env_steps_per_update * args.calls,
        trainer: config.env_steps_per_update * args.calls,
    }
    rate = {name: [steps[name] / t for t in times[name]] for name in cases}
    versus_world = Ratio.of(rate[jit], rate[base])
    versus_jit = Ratio.of(rate[trainer], rate[jit])
    ok = verdict(versus_jit, TARGET)
    return [
        [worlds, base, f"{statistics.median(rate[base]):,.0f}", "-", "-", "-"],
        [worlds, jit, f"{statistics.median(rate[jit]):,.0f}", f"{versus_world} of world", "-", "-"],
        [worlds, trainer, f"{statistics.median(rate[trainer]):,.0f}", f"{versus_jit} of jit loop", f"≥ {TARGET}", ok],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rollout-len", type=int, default=PPOConfig().rollout_len)
    parser.add_argument("--calls", type=int, default=1, help="PPO updates per timed run")
    parser.add_argument("--quick", action="store_true", help="2 rounds, rollouts of 16 steps (the verdict is rough)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.rollout_len = 2, 16
    jax.config.update("jax_compilation_cache_dir", CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    logging.getLogger("emergence").setLevel(logging.WARNING)
    rows: list[list] = []
    with tempfile.TemporaryDirectory(prefix="emergence-bench-") as work:
        for worlds in WORLDS:
            rows += measure(worlds, args, work)
    config = PPOConfig(rollout_len=args.rollout_len)
    print_table(
        f"env_throughput: {args.rounds} interleaved rounds, medians; {machine()}",
        ["worlds", "run by", "env steps/s", "speed ratio (median ± MAD)", "target", "verdict"],
        rows,
        notes=[
            f"PPOConfig defaults but num_envs: rollout_len {config.rollout_len}, {config.num_epochs} epochs x "
            f"{config.num_minibatches} minibatches, hidden {config.hidden_sizes}, evolution "
            f"{config.evolution}; world {config.env.grid_size}x{config.env.grid_size}, "
            f"{config.env.max_agents} agent slots; {args.calls} update(s) per timed run"
        ],
    )
    exit_with([row[-1] for row in rows])


if __name__ == "__main__":
    main()
