"""sweep_throughput: S PPO runs of a sweep vmapped in one program (`SweepTask`) against the same S runs one
after another.

    python bench/sweep_throughput.py [--runs 8] [--rounds 5] [--calls 4] [--quick] [--kaggle]

The S runs differ in `diversity_bonus` (S values from 0 to 0.1), one seed each, as an
ablation grid would. Both sides compute the same updates from the same states; compiling
happens before timing. Per round (cases interleaved, see bench/_common.py):
  - sequential (the baseline): each run in turn makes `--calls` jitted calls of
    `PPOTask.train_step_with` with its own values (one program for all runs: the values
    are traced), as S separate `emergence train` jobs would;
  - vmap / map: `--calls` jitted calls of `SweepTask.train_step`, every run in one call,
    vectorised (`vmap`) or looped inside the program (`map`); see emergence.lab.sweep.task.
Both collect S x calls x num_envs x rollout_len env steps, so the env-steps-per-second
ratio (vmapped / sequential) is the per-round time ratio sequential / vmapped, given as
its median over rounds ± the median absolute deviation, for wall and for CPU time.
Target on a 2-core CPU: >= 1.0 for S = 8 with the default strategy (the `verdict` column). `--quick`: a tiny world,
3 rounds of 2 calls; `--kaggle`: the kaggle preset's 32-env learner (for a GPU).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import jax
import numpy as np
from _common import Lap, Ratio, Stopwatch, exit_with, interleaved, machine, print_table, verdict
from many_seeds import TINY

from emergence.lab.agents import KAGGLE, QUICK, PPOTask
from emergence.lab.config import PRESETS, LabConfig, lab_config
from emergence.lab.run import sweep_task
from emergence.lab.sweep.grid import Grid
from emergence.lab.sweep.task import default_strategy

TARGET = 1.0
LEARNERS = {"tiny": TINY, "quick": QUICK, "kaggle": KAGGLE}


def _config(name: str) -> LabConfig:
    """The LabConfig of `--quick` (a tiny world), the quick preset's learner (default) or `--kaggle`'s."""
    return lab_config("kaggle" if name == "kaggle" else "quick", LEARNERS[name], PRESETS["quick"].train)


def _ready(state, step: Callable, calls: int, *args):
    for _ in range(calls):
        state, _ = step(state, *args)
    return jax.block_until_ready(state)


def cases(name: str, runs: int, calls: int) -> tuple[dict[str, Callable[[], Lap]], int]:
    """The two timed cases (each keeps its states between rounds) and the env steps one round collects."""
    config = _config(name)
    grid = Grid({"evolution.diversity_bonus": [float(v) for v in np.linspace(0.0, 0.1, runs)]}, 1)
    sweeps = {strategy: sweep_task(config, grid, strategy) for strategy in ("vmap", "map")}
    inner = PPOTask(sweeps["map"].configs[0])
    one_step = jax.jit(inner.train_step_with, donate_argnums=0)
    hypers = [jax.tree.map(lambda x: x[i], sweeps["map"].hyper) for i in range(runs)]
    singles = [
        _ready(inner.init_state(jax.random.key(run.seed)), one_step, 1, hypers[run.index]) for run in sweeps["map"].runs
    ]  # compiles
    steps = {name: jax.jit(sweep.train_step, donate_argnums=0) for name, sweep in sweeps.items()}
    stacks = {name: _ready(sweep.init_state(jax.random.key(0)), steps[name], 1) for name, sweep in sweeps.items()}

    def sequential() -> Lap:
        watch = Stopwatch()
        for i in range(runs):
            singles[i] = _ready(singles[i], one_step, calls, hypers[i])
        return watch.stop()

    def in_one_program(name: str) -> Callable[[], Lap]:
        def timed() -> Lap:
            watch = Stopwatch()
            stacks[name] = _ready(stacks[name], steps[name], calls)
            return watch.stop()

        return timed

    timed = {"sequential": sequential, "vmap": in_one_program("vmap"), "map": in_one_program("map")}
    return timed, runs * calls * config.env_steps_per_update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="tiny world, 3 rounds of 2 calls")
    parser.add_argument("--kaggle", action="store_true", help="the kaggle preset's learner (32 envs; for a GPU)")
    args = parser.parse_args()
    name = "tiny" if args.quick else "kaggle" if args.kaggle else "quick"
    rounds, calls = (3, 2) if args.quick else (args.rounds, args.calls)
    timed, env_steps = cases(name, args.runs, calls)
    laps = interleaved(timed, rounds)
    rows, verdicts = [], []
    for case in ("sequential", "vmap", "map"):
        wall = Ratio.of([lap.wall for lap in laps["sequential"]], [lap.wall for lap in laps[case]])
        cpu = Ratio.of([lap.cpu for lap in laps["sequential"]], [lap.cpu for lap in laps[case]])
        rate = env_steps / sorted(lap.wall for lap in laps[case])[len(laps[case]) // 2]
        verdicts.append(verdict(cpu, TARGET) if case == default_strategy() and args.runs == 8 else "-")
        rows.append(
            [
                case + (" (default here)" if case == default_strategy() else ""),
                f"{rate:,.0f}",
                str(wall),
                str(cpu),
                verdicts[-1],
            ]
        )
    title = f"sweep_throughput: {args.runs} runs ({name} learner), {calls} calls per run per round, {rounds} rounds"
    print_table(
        title,
        ["case", "env steps/s (median)", "ratio vs sequential (wall)", "ratio (CPU time)", "verdict"],
        rows,
        [
            f"machine: {machine()}",
            "ratio = env steps per second / the sequential runs' in the same round; "
            f"higher is better; ± is the median absolute deviation over rounds; target (S = 8, the default "
            f"strategy, CPU time: the steadier figure on a shared machine) >= {TARGET}",
        ],
    )
    exit_with(verdicts)


if __name__ == "__main__":
    main()
