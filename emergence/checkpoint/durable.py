"""A durable checkpoint write: the file (or a hard link), then `latest.json`, then what follows it (rotation).

One function, run inline for synchronous saves and on the writer thread for background
ones, so a failure is the same one-line `CheckpointWriteError` either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from emergence.checkpoint.finite import NonFiniteStateError, non_finite_leaves, refusal
from emergence.checkpoint.format import write_checkpoint
from emergence.checkpoint.store import CheckpointRef, link_checkpoint, write_latest
from emergence.errors import CheckpointWriteError


def write_durably(
    ref: CheckpointRef,
    arrays: dict,
    manifest: dict,
    started: float,
    then: Callable[[CheckpointRef], None] | None,
    same_as: CheckpointRef | None = None,
    check_finite: bool = False,
) -> tuple[CheckpointRef, float]:
    """Write `ref`'s file, point `latest.json` at it, run `then`; the ref with its checksum and the save's seconds.

    Runs on the writer thread for async saves and inline for the others; a failure is the
    same one-line `CheckpointWriteError` either way. The seconds run from `started` (the
    snapshot) to the durable file: what the same save costs written synchronously. With
    `same_as` (a durable file of the same step and state) no arrays are written: `ref` is
    made a hard link of it (see `link_checkpoint`). `check_finite` refuses a state with
    NaN or infinite values: the scan reads every byte (55-90 ms per 256 MiB on this CPU),
    so it runs beside the write, off the loop for background saves, and a refusal abandons
    the file before its rename; a background save's `NonFiniteStateError` reaches the loop
    where the write is collected.
    """

    def refuse_non_finite() -> None:
        if bad := non_finite_leaves(arrays):
            raise NonFiniteStateError(refusal(ref.kind, ref.step, bad))

    try:
        if same_as is not None:
            written = link_checkpoint(same_as, ref)
        else:
            checksum = write_checkpoint(ref.path, arrays, manifest, check=refuse_non_finite if check_finite else None)
            written = CheckpointRef(ref.path, ref.kind, ref.step, checksum)
        write_latest(ref.path.parent, written, reason=manifest.get("reason"))
    except OSError as err:
        raise CheckpointWriteError(
            f"could not write {ref.path.name} ({err.strerror or err}); earlier checkpoints are intact, "
            f"free disk space in {ref.path.parent} or lower keep_last"
        ) from err
    seconds = time.perf_counter() - started
    if then is not None:
        try:
            then(written)
        except OSError as err:
            raise CheckpointWriteError(
                f"wrote {ref.path.name} but could not delete older checkpoints ({err.strerror or err}); "
                f"check the permissions of {ref.path.parent}"
            ) from err
    return written, seconds
