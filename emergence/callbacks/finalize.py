"""FinalizeCallback: however the run ends, a summary, checksums and (optionally) one zip to download.

It acts in `teardown`, the last hook of `fit()`, which runs whatever the reason (max_steps,
time budget, a signal, an exception) and after every callback's `on_fit_end`: the final
or emergency checkpoint, the last artifacts and the flushed metrics are all on disk by
then, wherever this callback sits in the list. The one rule: put it *before*
`SignalCheckpointCallback`, whose `teardown` ends the process.

In the output dir (the run dir by default), each atomically and in this order:

- the application's own artifacts: each of `artifacts` (callables taking the output dir,
  such as a report writer) writes its files, so that the sums and the zip below hold them
  as they are at the end; one that raises is logged and skipped;
- `summary.json`: status (`complete` when the reason is `max_steps`, else `interrupted`),
  reason, final step, total time and each session's time and steps (the list travels in
  every checkpoint; a session killed outright is known up to its last checkpoint), the
  latest checkpoint's path, kind, step and checksum, and the rollbacks a divergence guard
  made (`rollbacks` in `trainer.summary()`: step, restored step, rng fold-in; empty without one);
- `SHA256SUMS`: every file under the output dir (relative paths; the format of
  `sha256sum -c`, which verifies a download), except itself and `outputs.zip`;
- `outputs.zip` when `zip_outputs` (default: on Kaggle only): everything above, checksums
  included, in one file to download from the notebook's output page.

A failure to write (a full disk) is logged and never replaces the exception that ended
the run.
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from emergence.callbacks._records import latest_checkpoint, output_dir, write_json
from emergence.callbacks.base import Callback
from emergence.checkpoint.atomic import TEMP_PREFIX, atomic_write, atomic_write_text
from emergence.checkpoint.fresh_start import PREVIOUS_PREFIX
from emergence.errors import EmergenceError
from emergence.log import get_logger
from emergence.parallel.process_zero import writes_outputs
from emergence.platforms.detect import platform_name
from emergence.sums import SUMS_FILE, format_sums

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

SUMMARY = "summary.json"
SUMS = SUMS_FILE
ZIP = "outputs.zip"
STORED_SUFFIXES = (".safetensors", ".png", ".zip", ".gz")


class FinalizeCallback(Callback):
    """Writes summary.json, SHA256SUMS and optionally outputs.zip at the end of `fit()`; see the module docstring.

    Args:
        zip_outputs: pack the output dir into `outputs.zip`; None (default) zips on Kaggle only.
        output_dir: where the files go and what is summed (default: the run dir).
        artifacts: callables given the output dir, run first, each writing an application's files there
            (a report of the run); the framework knows nothing of what they write.
        clock: epoch seconds (inject a fake one in tests).
    """

    def __init__(
        self,
        zip_outputs: bool | None = None,
        output_dir: str | os.PathLike | None = None,
        clock: Callable[[], float] = time.time,
        artifacts: Sequence[Callable[[Path], object]] = (),
    ) -> None:
        self.zip_outputs = zip_outputs
        self.output_dir = output_dir
        self.artifacts = tuple(artifacts)
        self.clock = clock
        self.sessions: list[dict[str, Any]] = []
        self._trainer: "Trainer | None" = None
        self._began = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"sessions": self._all_sessions()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sessions = list(state.get("sessions", []))

    def setup(self, trainer: "Trainer") -> None:
        self._trainer = None
        if not writes_outputs():  # under jax.distributed, process 0 finalizes
            return
        output_dir(trainer, self.output_dir, "FinalizeCallback")  # fail fast, before training
        self._trainer = trainer
        self._began = self.clock()
        self.sessions = []

    def teardown(self, trainer: "Trainer") -> None:
        if self._trainer is None:  # setup did not finish, or this process does not write
            return
        try:
            self.finalize(trainer)
        except (OSError, EmergenceError) as err:
            log.error("finalize: could not write the summary in %s (%s)", self.output_dir or trainer.run_dir, err)
        finally:
            self._trainer = None

    def finalize(self, trainer: "Trainer") -> dict[str, Any]:
        """Write the artifacts, summary.json, SHA256SUMS and (if asked) outputs.zip now; the summary."""
        root = output_dir(trainer, self.output_dir, "FinalizeCallback")
        for write in self.artifacts:
            write_artifact(write, root)
        sessions = self._all_sessions()
        reason = trainer.stop_reason
        summary = {
            "status": "complete" if reason is not None and reason.kind == "max_steps" else "interrupted",
            "reason": str(reason) if reason is not None else None,
            "final_step": trainer.step,
            "max_steps": trainer.max_steps,
            "total_seconds": sum(session["seconds"] for session in sessions),
            "sessions": sessions,
            "latest_checkpoint": latest_checkpoint(trainer, root),
            "rollbacks": list(trainer.summary().get("rollbacks", [])),
        }
        write_json(root / SUMMARY, summary)
        write_checksums(root)
        zipped = self.zip_outputs if self.zip_outputs is not None else platform_name() == "kaggle"
        if zipped:
            write_zip(root)
        log.info(
            "finalize: %s at step %d (%s): %s, %s%s in %s",
            summary["status"],
            trainer.step,
            reason,
            SUMMARY,
            SUMS,
            f", {ZIP}" if zipped else "",
            root,
        )
        return summary

    def _all_sessions(self) -> list[dict[str, Any]]:
        """Earlier sessions, then this one so far: start (epoch), seconds, steps and (once known) why it stopped."""
        trainer = self._trainer
        if trainer is None:
            return list(self.sessions)
        return [
            *self.sessions,
            {
                "started": self._began,
                "seconds": self.clock() - self._began,
                "start_step": trainer.fit_start_step,
                "end_step": trainer.step,
                "reason": str(trainer.stop_reason) if trainer.stop_reason is not None else None,
            },
        ]


def write_artifact(write: Callable[[Path], object], root: Path) -> None:
    """Run one application artifact writer on `root`; a failure is logged, and the sums still cover what is there."""
    try:
        write(root)
    except Exception as err:  # an application's bug or bad data must not cost the run its checksums
        name = getattr(write, "__qualname__", repr(write))
        log.error(
            "finalize: the artifact %s failed, the other outputs are still summed (%s: %s)",
            name,
            type(err).__name__,
            err,
        )


def output_files(root: Path) -> list[Path]:
    """Files under `root` to sum and zip, as sorted relative paths (not SHA256SUMS, outputs.zip or temp files).

    Symlinks are left out (rglob does not descend into linked folders either): a link in a
    resumed run dir must not carry a file from elsewhere (`~/.kaggle/kaggle.json`) into a
    public `outputs.zip`. So are the `previous-<time>/` folders an overwrite moved an earlier
    run into: they are not this run's, and each holds that run's own `outputs.zip`, so zipping
    them would double the zip at every overwrite (a re-run cell filled a disk that way).
    """
    found = (
        path
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and not path.name.startswith(TEMP_PREFIX)
    )
    relative = (path.relative_to(root) for path in found)
    return sorted(path for path in relative if path.as_posix() not in (SUMS, ZIP) and not _earlier_run(path))


def _earlier_run(relative: Path) -> bool:
    """`relative` lies in a `previous-<time>/` folder of an earlier run (`checkpoint.fresh_start`)."""
    return len(relative.parts) > 1 and relative.parts[0].startswith(PREVIOUS_PREFIX)


def write_checksums(root: Path) -> None:
    """`SHA256SUMS` for `output_files(root)`, in the format `sha256sum -c` reads (see emergence.sums)."""
    atomic_write_text(root / SUMS, format_sums(root, output_files(root)))


def write_zip(root: Path) -> None:
    """`outputs.zip` of `output_files(root)` plus SHA256SUMS (stored, not deflated, for binary files)."""
    names = output_files(root) + ([Path(SUMS)] if (root / SUMS).exists() else [])

    def pack(handle: IO[bytes]) -> None:
        with zipfile.ZipFile(handle, "w") as archive:
            for relative in names:
                method = zipfile.ZIP_STORED if relative.suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                archive.write(root / relative, relative.as_posix(), compress_type=method)

    atomic_write(root / ZIP, pack)
