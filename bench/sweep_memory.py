"""sweep_memory: how much memory one sweep step needs as the number of runs S grows (1, 8, 30).

    python bench/sweep_memory.py [--learners quick,kaggle] [--runs 1,8,30]

For each learner (the quick and kaggle presets' PPO) and each S, the sweep's step is
compiled on abstract shapes (nothing runs) and XLA's memory analysis says the bytes its
arguments, outputs and temporaries take (`emergence.lab.sweep.memory.step_bytes`, the
figure `emergence sweep` checks against a device's limit before training), for both
strategies: `vmap` (all runs' temporaries at once) and `map` (one run's at a time). The
per-run figure and the run count that fits a T4's 16 GB (15 GiB usable, 90% headroom as
the sweep's check keeps) follow from it. The process's peak resident memory is printed
too (the compiler's own memory, on this host).
"""

from __future__ import annotations

import argparse
import resource

import numpy as np
from _common import machine, print_table

from emergence.lab.agents import KAGGLE, QUICK
from emergence.lab.config import PRESETS, lab_config
from emergence.lab.run import sweep_task
from emergence.lab.sweep.grid import Grid
from emergence.lab.sweep.memory import HEADROOM, step_bytes

T4_BYTES = 15 * 2**30
LEARNERS = {"quick": QUICK, "kaggle": KAGGLE}


def measure(learner: str, runs: int, strategy: str) -> int:
    """Bytes of one compiled sweep step of `runs` runs of `learner` under `strategy`."""
    config = lab_config(learner, LEARNERS[learner], PRESETS["quick"].train)
    grid = Grid({"evolution.diversity_bonus": [float(v) for v in np.linspace(0.0, 0.1, runs)]}, 1)
    return step_bytes(sweep_task(config, grid, strategy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", default="quick,kaggle")
    parser.add_argument("--runs", default="1,8,30")
    args = parser.parse_args()
    rows = []
    for learner in args.learners.split(","):
        for strategy in ("vmap", "map"):
            for runs in (int(r) for r in args.runs.split(",")):
                needed = measure(learner, runs, strategy)
                fits = int(HEADROOM * T4_BYTES // max(needed / runs, 1))
                rows.append(
                    [learner, strategy, runs, f"{needed / 2**20:,.1f}", f"{needed / runs / 2**20:,.2f}", f"{fits:,}"]
                )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print_table(
        f"sweep_memory: XLA memory analysis of the compiled sweep step; {machine()}",
        ["learner", "strategy", "runs S", "step MiB", "MiB per run", "runs that fit a T4 (15 GiB x 0.9)"],
        rows,
        [f"Peak resident memory of this process (compiling all of the above): {peak:,.0f} MiB."],
    )


if __name__ == "__main__":
    main()
