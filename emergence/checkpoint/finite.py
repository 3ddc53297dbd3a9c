"""Finite states only: no checkpoint of any kind holds a NaN or an infinity, so no resume starts diverged.

`Trainer.save_checkpoint` asks `non_finite_leaves` about the host arrays it already
gathered for the write (float leaves only: integer steps, key data and counters cannot
diverge), so the check costs one pass over memory already on the host (a sum: no copy) and
no device work.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from emergence.errors import EmergenceError


class NonFiniteStateError(EmergenceError):
    """A checkpoint was refused because the state holds NaN or infinite values."""


def non_finite_leaves(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """The names of the floating-point arrays (bf16 and fp8 included) holding a NaN or an infinity."""
    return [
        name for name, array in arrays.items() if jnp.issubdtype(array.dtype, jnp.inexact) and not _all_finite(array)
    ]


def _all_finite(array: np.ndarray) -> bool:
    """True when no element is NaN or infinite.

    A NaN or an infinity anywhere makes the sum NaN or infinite, so a finite sum clears the
    array in one pass that allocates nothing: ~35-55 ms for 500 MB of float32 here, against
    ~130-190 ms for `isfinite(array).all()`, which builds a boolean copy first (it is on
    the path of every synchronous and emergency save). A non-finite sum (an overflow of
    huge but finite values gives one too) is settled element by element.
    """
    if array.size >= 4096:
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.add.reduce(array.reshape(-1), dtype=np.float32 if array.itemsize < 4 else None)
        if np.isfinite(total):
            return True
    return bool(np.isfinite(array).all())


def refusal(kind: str, step: int, bad: list[str]) -> str:
    """The one-line reason a `kind` checkpoint of `step` is not written."""
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return (
        f"refusing to write a {kind} checkpoint of step {step}: leaf {bad[0]!r}{more} holds NaN or infinite "
        f"values; earlier checkpoints are intact (add NonFiniteGuardCallback to roll back, or lower the "
        f"learning rate)"
    )
