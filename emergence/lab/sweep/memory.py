"""Does a sweep fit the device? XLA's memory analysis of the compiled step, before training starts.

The sweep's step is compiled once on abstract shapes (nothing runs, nothing is written)
and XLA says how many bytes its arguments, outputs and temporaries take; with the
device's memory limit (`memory_stats()["bytes_limit"]`, reported by GPUs and TPUs; a CPU
reports none and is not checked) that gives the answer and, assuming the bytes grow in
proportion to the number of runs, the largest run count that fits. A sweep that does
not fit is a one-line `UsageError` naming both numbers.
"""

from __future__ import annotations

from typing import Any

import jax

from emergence.errors import UsageError

HEADROOM = 0.9
"""Share of the device's limit a sweep may plan to use (XLA and the allocator keep some for themselves)."""


def step_bytes(task: Any) -> int:
    """Bytes the task's compiled train step needs: arguments + outputs - donated aliases + temporaries."""
    shapes = jax.eval_shape(task.init_state, jax.random.key(0))
    stats = jax.jit(task.train_step, donate_argnums=0).lower(shapes).compile().memory_analysis()
    return (
        stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes + stats.temp_size_in_bytes
    )


def device_limit(device: Any = None) -> int | None:
    """The device's memory limit in bytes, or None when it reports none (a CPU)."""
    stats = (device or jax.devices()[0]).memory_stats()
    return (stats or {}).get("bytes_limit")


def check_fits(task: Any, limit: int | None = None, needed: int | None = None) -> None:
    """Refuse a sweep whose step needs more than `HEADROOM` of the device's memory (`limit`, default: asked)."""
    limit = device_limit() if limit is None else limit
    if limit is None:
        return
    needed = step_bytes(task) if needed is None else needed
    if needed <= HEADROOM * limit:
        return
    runs = task.num_seeds
    largest = int(HEADROOM * limit // max(needed / runs, 1))
    raise UsageError(
        f"this sweep of {runs} runs needs about {needed / 2**30:.2f} GiB on the device, which has "
        f"{limit / 2**30:.2f} GiB: at most {largest} runs fit; use fewer --sweep.grid values or "
        f"--sweep.seeds (or --sweep.strategy map, which keeps one run's temporaries at a time)"
    )
