"""Facts about this process, whatever the platform: when it started, whether a notebook runs it, what JAX sees."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Literal

_IMPORTED_AT = time.time()

Accelerator = Literal["gpu", "tpu", "cpu"]


def process_start_time() -> float:
    """Epoch seconds at which this process started.

    Read from `/proc/self/stat` (start in clock ticks after boot) and `/proc/stat`
    (boot time), good to about a second; where `/proc` is missing, the time this
    module was first imported.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


def in_ipython_kernel() -> bool:
    """True inside a Jupyter/IPython kernel (a notebook), where exiting the process is wrong."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def jax_accelerator() -> tuple[Accelerator, int]:
    """(`gpu` | `tpu` | `cpu`, local device count) of JAX's default backend (imports JAX)."""
    import jax

    backend = jax.default_backend()
    kind = "tpu" if backend == "tpu" else "cpu" if backend == "cpu" else "gpu"
    return kind, jax.local_device_count()  # type: ignore[return-value]


def jax_devices() -> dict[str, object]:
    """What a checkpoint records of where it was written: JAX's backend, device kinds and count (imports JAX)."""
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_kinds": sorted({d.device_kind for d in devices}),
        "device_count": len(devices),
        "process_count": jax.process_count(),
    }
