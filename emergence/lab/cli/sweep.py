"""`emergence sweep`: a grid of config values x seeds trained as one vmapped, resumable program.

    emergence sweep --preset quick --sweep.grid diversity_bonus=0,0.05 --sweep.grid niche_pressure=0,0.05 \\
        --sweep.seeds 2 --train.run-dir runs/ablation

Every `emergence train` flag applies (to every run); `--sweep.grid KEY=V1,V2,...` is
repeatable (KEY a dotted config name or an unambiguous suffix; only values that enter
the computation may vary, see `emergence.lab.sweep.grid`), `--sweep.seeds N` gives each
grid point N seeds (`--train.seed`, +1, ...). Lengths and intervals are per run. The
sweep runs under the platform's survival callbacks, resumes with `--train.resume-from
auto` (the same grid only), and ends by writing the report (`emergence report DIR`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import jax

from emergence.callbacks import FinalizeCallback
from emergence.cli.usage import UsageError
from emergence.lab.cli.train import parse_config
from emergence.lab.report import summary
from emergence.lab.run import build_trainer, resolve_platform
from emergence.lab.sweep.grid import parse_grid
from emergence.lab.sweep.memory import check_fits
from emergence.lab.sweep.report import REPORT_FILES, write_report
from emergence.lab.sweep.resume import check_resume

HELP = """emergence sweep: a grid of config values x seeds as one program (all `emergence train` flags apply)

  --sweep.grid KEY=V1,V2,...  values of one config key (repeatable), e.g. diversity_bonus=0,0.05
  --sweep.seeds N             seeds per grid point, from --train.seed (default 1)
  --sweep.strategy S          auto (default: map on a CPU, vmap on a GPU), vmap (vectorise the runs) or map
                              (loop over them inside the one program)
"""


def split_sweep_flags(argv: Sequence[str]) -> tuple[list[str], int, str, list[str]]:
    """(`--sweep.grid` entries, `--sweep.seeds`, `--sweep.strategy`, the other arguments) of a command line."""
    entries, seeds, strategy, rest, args = [], "1", "auto", [], list(argv)
    while args:
        arg = args.pop(0)
        name, sep, value = arg.partition("=")
        if name not in ("--sweep.grid", "--sweep.seeds", "--sweep.strategy"):
            rest.append(arg)
            continue
        if not sep:
            if not args:
                raise UsageError(f"{name} needs a value (see `emergence sweep --help`)")
            value = args.pop(0)
        if name == "--sweep.grid":
            entries.append(value)
        elif name == "--sweep.seeds":
            seeds = value
        else:
            strategy = value
    try:
        return entries, int(seeds), strategy, rest
    except ValueError:
        raise UsageError(f"--sweep.seeds must be a positive count of seeds per grid point, got {seeds!r}") from None


def main(argv: list[str]) -> int:
    """`emergence sweep [FLAGS]`: train every run, print a summary and the report, return 0."""
    if "-h" in argv or "--help" in argv:
        print(HELP)
        parse_config(["--help"])
    entries, seeds, strategy, rest = split_sweep_flags(argv)
    config = parse_config(rest)
    grid = parse_grid(config, entries, seeds, strategy)
    platform = resolve_platform(config)
    runs = grid.runs(config.train.seed)
    check_resume(config, platform, {"sweep": grid.to_dict(), "seeds": [run.seed for run in runs]})
    trainer = build_trainer(config, platform, sweep=grid)
    check_fits(trainer.task)  # XLA's memory analysis against the device's limit (GPUs, TPUs); nothing written yet
    print(
        f"emergence sweep: {len(runs)} runs ({len(runs) // grid.seeds} grid points x {grid.seeds} seeds) in one "
        f"program ({trainer.task.strategy}), preset {config.preset} on {platform}, run dir {trainer.run_dir}; "
        f"{config.train.total_steps:,} env steps per run = {config.updates(config.train.total_steps):,} updates",
        flush=True,
    )
    began = time.perf_counter()
    trainer.fit()
    jax.block_until_ready(trainer.state)
    print(
        summary(trainer, time.perf_counter() - began)
        .replace("env steps)", "env steps over all runs)")
        .replace("env steps/s", "env steps/s over all runs"),
        flush=True,
    )
    if not any(isinstance(cb, FinalizeCallback) and write_report in cb.artifacts for cb in trainer.callbacks):
        write_report(Path(trainer.run_dir))  # else finalize wrote it, and summed it: rewriting would break SHA256SUMS
    written = [Path(trainer.run_dir) / name for name in REPORT_FILES if (Path(trainer.run_dir) / name).exists()]
    print(f"report: {', '.join(str(path) for path in written) or 'none (nothing was logged)'}", flush=True)
    return trainer.exit_code
