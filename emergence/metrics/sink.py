"""The Sink protocol: where logged metrics go (a CSV file, TensorBoard, the console, your tracker).

A sink is any object with these four methods; `LogThrottleCallback` calls them. Writing
a new one is a screenful:

    class JsonLinesSink:
        def start(self, run: SinkStart) -> None:
            self.handle = open(run.run_dir / "metrics.jsonl", "a")
        def write(self, step: int, values: Mapping[str, float]) -> None:
            self.handle.write(json.dumps({"step": step, **values}) + "\\n")
        def flush(self) -> None:
            self.handle.flush()
        def close(self) -> None:
            self.handle.close()

A sink that keeps history across sessions should drop what it holds after
`run.step` in `start` (a resumed run logs those steps again); see `CSVSink`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SinkStart:
    """What a sink learns when training starts.

    Attributes:
        run_dir: the Trainer's run directory; relative sink paths live under it.
        step: the step training starts from (the checkpoint's step on resume, else 0):
            history after it is stale and must go.
        history_dir: the run directory of the checkpoint resumed from when it is another one
            (a previous Kaggle session's output under /kaggle/input): a sink with nothing of
            its own yet may copy its history, up to `step`, from there. None otherwise.
    """

    run_dir: Path
    step: int
    history_dir: Path | None = None

    def resolve(self, path: str | Path) -> Path:
        """`path` as given when absolute, else under `run_dir`."""
        path = Path(path)
        return path if path.is_absolute() else self.run_dir / path

    def history(self, path: str | Path) -> Path | None:
        """Where the same relative `path` lives in `history_dir`, if there is one, it exists and it is no symlink.

        A previous session's output is read, never trusted: a link there (to `~/.kaggle/kaggle.json`,
        say) would copy that file into this run's outputs, so it is not followed.
        """
        path = Path(path)
        if self.history_dir is None or path.is_absolute() or ".." in path.parts:
            return None
        candidate = self.history_dir / path
        return candidate if candidate.exists() and not candidate.is_symlink() else None


@runtime_checkable
class Sink(Protocol):
    """Receives host metric values at a step."""

    def start(self, run: SinkStart) -> None:
        """Training starts at `run.step`: open files, drop history after it."""

    def write(self, step: int, values: Mapping[str, float]) -> None:
        """Record `values` (tag → float) at `step`; several writes may share a step."""

    def flush(self) -> None:
        """Hand everything written so far to the OS (it must survive the process being killed)."""

    def close(self) -> None:
        """Release files; the sink is not written to again."""
