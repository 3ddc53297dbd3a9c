"""selection_world: does a world live below its cap with steady turnover? Measured with a fixed policy, in seconds.

    python bench/selection_world.py [--preset selection] [--policy greedy|random] [--steps 20000]
        [--worlds 8] [--grid food_energy=20,30 food_regrowth=0.03,0.05]

Runs `worlds` worlds of a preset's `EnvParams` for `steps` steps under a fixed policy
(`random`: uniform actions; `greedy`: step onto visible food, nearest first, else a
random move, a stand-in for a trained forager), resetting a world only on extinction
or after `max_steps`, as the learner does. Every combination of `--grid` values (the
world's traced values, `emergence.envs.params`) is one more row, and all of them run in
ONE compiled program vmapped over the values: that is the point of traced values.

Per row: mean population / cap over the last half, deaths and births per 1000 agent
steps (last half), the share of the last quarter's windows (of `--window` steps) with a
death, the deepest generation at the half and at the end, env steps per generation
(steps / deepest generation at the end), extinctions.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import jax
import jax.numpy as jnp

from emergence.envs.turnover import simulate, turnover
from emergence.lab.config import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="selection", choices=sorted(PRESETS))
    parser.add_argument("--policy", default="greedy", choices=("greedy", "random"))
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--worlds", type=int, default=8)
    parser.add_argument("--window", type=int, default=200, help="env steps per logged window (turnover check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", nargs="*", default=[], help="NAME=V1,V2 over the world's traced values")
    args = parser.parse_args()
    env = PRESETS[args.preset].env
    names = [entry.partition("=")[0] for entry in args.grid]
    points = list(itertools.product(*[[float(v) for v in e.partition("=")[2].split(",")] for e in args.grid])) or [()]
    rows = [dataclasses.replace(env.values(), **dict(zip(names, point))) for point in points]
    stacked = jax.tree.map(lambda *xs: jnp.asarray(xs, jnp.float32), *rows)
    run = jax.jit(jax.vmap(lambda v: simulate(env, v, args.worlds, args.steps, args.policy, jax.random.key(args.seed))))
    start = time.perf_counter()
    traces = jax.block_until_ready(run(stacked))
    seconds = time.perf_counter() - start
    print(
        f"{args.preset} world, {args.policy} policy, {args.worlds} worlds x {args.steps} steps, seed {args.seed}, "
        f"{len(rows)} value sets in one program: {seconds:.1f} s (compile included)"
    )
    for i, point in enumerate(points):
        row = turnover(jax.tree.map(lambda x: x[i], traces), env, args.worlds, args.window)
        label = ",".join(f"{n}={v:g}" for n, v in zip(names, point)) or "preset values"
        print(
            label.ljust(40), "  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        )


if __name__ == "__main__":
    main()
