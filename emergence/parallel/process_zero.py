"""The one answer to "does this process write the run's files?": the only process, or process 0 of several.

Under `jax.distributed` every process trains, gathers and agrees, but checkpoints,
`latest.json`, metrics, artifacts and the summary are written once, by process 0.
"""

from __future__ import annotations


def writes_outputs() -> bool:
    """True on the process that writes checkpoints and outputs: the only one, or process 0 of several."""
    import jax

    return jax.process_index() == 0
