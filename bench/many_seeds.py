"""many_seeds: S=8 PPO runs vmapped in one program (`ManySeeds`) against the same 8 runs one after another.

    python bench/many_seeds.py [--rounds 5] [--calls 4] [--seeds 8] [--quick]

Both sides run the same PPO train_step, jitted with donated state, on the same 8
seeds' states; compilation happens before timing. Per round:
  - sequential (the baseline): for each seed in turn, `--calls` jitted calls of its own
    state (8 runs, one after the other, as 8 separate jobs would);
  - vmapped: `--calls` jitted calls of `ManySeeds(task, 8)`, every seed at once.
Both collect 8 x calls x num_envs x rollout_len env steps, so the env-steps-per-second
ratio (vmapped / sequential) is the per-round time ratio sequential / vmapped; the
table gives its median over interleaved rounds and the noise (median absolute
deviation), for wall time and for process CPU time. No target: the gain depends on
how far one run is from filling the device (a CPU with 2 cores has little room; a GPU
running a 32-env PPO has a lot), against the extra work vmap adds (PPO's `lax.cond`s
become `select`s that run both branches). docs/scaling.md has the figures measured.
`--quick` is a tiny world for a smoke run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import jax
from _common import Lap, Ratio, Stopwatch, interleaved, machine, print_table

from emergence.envs import EnvParams
from emergence.lab.agents import PPOTask
from emergence.lab.agents.config import QUICK, PPOConfig
from emergence.parallel import ManySeeds

TINY = PPOConfig(
    env=EnvParams(grid_size=6, max_agents=4, initial_agents=2, num_food=4, view_radius=1, max_steps=20),
    num_envs=4,
    rollout_len=8,
    num_epochs=1,
    num_minibatches=2,
    hidden_sizes=(16,),
)


def _ready(state, step: Callable, calls: int):
    for _ in range(calls):
        state, _ = step(state)
    return jax.block_until_ready(state)


def cases(config: PPOConfig, seeds: int, calls: int) -> dict[str, Callable[[], Lap]]:
    """The two timed cases; each keeps its states between rounds (donated in, returned out)."""
    task = ManySeeds(PPOTask(config), seeds)
    run_key = jax.random.key(0)
    one_step = jax.jit(task.task.train_step, donate_argnums=0)
    all_step = jax.jit(task.train_step, donate_argnums=0)
    singles = [_ready(task.task.init_state(key), one_step, 1) for key in task.seed_keys(run_key)]  # compiles
    stacked = [_ready(task.init_state(run_key), all_step, 1)]

    def sequential() -> Lap:
        watch = Stopwatch()
        for i in range(seeds):
            singles[i] = _ready(singles[i], one_step, calls)
        return watch.stop()

    def vmapped() -> Lap:
        watch = Stopwatch()
        stacked[0] = _ready(stacked[0], all_step, calls)
        return watch.stop()

    return {"sequential": sequential, "vmapped": vmapped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="tiny world, 3 rounds of 2 calls")
    args = parser.parse_args()
    config = TINY if args.quick else QUICK
    rounds, calls = (3, 2) if args.quick else (args.rounds, args.calls)
    laps = interleaved(cases(config, args.seeds, calls), rounds)
    env_steps = args.seeds * calls * config.env_steps_per_update
    rows = []
    for name in ("sequential", "vmapped"):
        wall = Ratio.of([lap.wall for lap in laps["sequential"]], [lap.wall for lap in laps[name]])
        cpu = Ratio.of([lap.cpu for lap in laps["sequential"]], [lap.cpu for lap in laps[name]])
        rate = env_steps / sorted(lap.wall for lap in laps[name])[len(laps[name]) // 2]
        rows.append([name, f"{rate:,.0f}", str(wall), str(cpu)])
    print_table(
        f"many_seeds: {args.seeds} PPO runs, {config.num_envs} envs x {config.rollout_len} steps per call, "
        f"{calls} calls per run per round, {rounds} rounds",
        ["case", "env steps/s (median)", "ratio vs sequential (wall)", "ratio (CPU time)"],
        rows,
        [
            f"machine: {machine()}",
            "ratio = env steps per second / the sequential runs' in the same round; "
            "higher is better; ± is the median absolute deviation over rounds",
        ],
    )


if __name__ == "__main__":
    main()
