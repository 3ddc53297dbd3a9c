"""TensorBoardSink: scalars in TensorBoard event files, continuous across resumes.

Each session writes its own event file in the log dir (`tensorboard/` in the run dir).
After the file-version event it begins with "a session starts at step S+1" (the
`purge_step` mechanism of tensorboardX's `SummaryWriter`: a `SessionLog.START` event at
step S+1), so TensorBoard's reader drops every event at a step > S written by an earlier
session that was killed after its checkpoint at S: the curves show one value per step,
no duplicates, no gaps.

Events are written through tensorboardX's synchronous `EventsWriter`, not through
`SummaryWriter`: the latter hands events to a background queue that its `flush()`
does not drain, so events "flushed" just before a SIGKILL could still be lost. Here a
`flush()` puts every written event in the OS's hands.

On a resume from another run dir (a previous Kaggle session's output), when this log
dir has no event files yet, the earlier run's files are copied in first, so the history
continues in the new output.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.proto.summary_pb2 import Summary

from emergence.checkpoint.atomic import atomic_write
from emergence.metrics.sink import SinkStart

EVENT_FILE_MARK = "tfevents"


def event_files(logdir: Path) -> list[Path]:
    """The TensorBoard event files directly in `logdir`, by name (which is by creation time); symlinks left out."""
    if not logdir.is_dir():
        return []
    return sorted(p for p in logdir.iterdir() if EVENT_FILE_MARK in p.name and p.is_file() and not p.is_symlink())


class TensorBoardSink:
    """Writes scalars to TensorBoard event files under `logdir` (relative to the run dir unless absolute)."""

    def __init__(self, logdir: str | Path = "tensorboard") -> None:
        self.relative = Path(logdir)
        self.logdir: Path | None = None
        self._writer: EventsWriter | None = None

    def start(self, run: SinkStart) -> None:
        self.logdir = run.resolve(self.relative)
        self.logdir.mkdir(parents=True, exist_ok=True)
        history = run.history(self.relative)
        if history is not None and not event_files(self.logdir):
            for source in event_files(history):
                _copy_atomically(source, self.logdir / source.name)
        # A distinct, time-ordered name per session, even for two sessions started within one second.
        suffix = f".{time.time_ns()}.{os.getpid()}"
        self._writer = EventsWriter(str(self.logdir / "events"), suffix)
        self._writer.write_event(
            Event(step=run.step + 1, wall_time=time.time(), session_log=SessionLog(status=SessionLog.START))
        )

    def write(self, step: int, values: Mapping[str, float]) -> None:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
        self._writer.write_event(Event(step=step, wall_time=time.time(), summary=summary))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _copy_atomically(source: Path, target: Path) -> None:
    with open(source, "rb") as handle:
        atomic_write(target, lambda out: shutil.copyfileobj(handle, out))
