"""ArtifactExportCallback: partial results on disk whenever the session dies.

Every `every_n_steps` steps and/or `every_n_seconds` seconds, and when training ends,
it writes into the output dir (the run dir by default), each file atomically:

- `training_curves.png`: the metrics in `metrics.csv` (written by `LogThrottleCallback`'s
  CSV sink), one panel per tag family, dotted lines where the run resumed;
- `progress.json`: step, max_steps, time, stop reason, the steps the run resumed at, the
  last checkpoint (path, kind, step, checksum) and the latest logged metrics (what a
  metrics logger published: `metrics` and `metrics_step` in `trainer.summary()`);
- `metrics.csv` itself, copied, when the output dir is not the run dir.

Drawing the PNG takes a fraction of a second on the training thread, so keep the
interval in minutes (the default is ten). The resume steps travel in every checkpoint.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emergence.callbacks._records import latest_checkpoint, output_dir, write_json
from emergence.callbacks.base import Callback, Metrics
from emergence.checkpoint.atomic import atomic_write
from emergence.log import get_logger
from emergence.metrics.plots import write_training_curves
from emergence.parallel.process_zero import writes_outputs
from emergence.schedule import Every, Pace

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

CURVES = "training_curves.png"
PROGRESS = "progress.json"


class ArtifactExportCallback(Callback):
    """Writes training_curves.png and progress.json periodically and at the end; see the module docstring.

    Args:
        every_n_steps: export every this many steps (None: by time only).
        every_n_seconds: export every this many seconds (None: by steps only).
        output_dir: where the files go (default: the run dir).
        clock: monotonic seconds (inject a fake one in tests).
        metrics_csv: the CSV to plot, relative to the run dir unless absolute.
    """

    def __init__(
        self,
        every_n_steps: int | None = None,
        every_n_seconds: float | None = 600.0,
        output_dir: str | os.PathLike | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        metrics_csv: str | os.PathLike = "metrics.csv",
    ) -> None:
        self.schedule = Every(every_n_steps, every_n_seconds, clock, owner="ArtifactExportCallback")
        self.output_dir = output_dir
        self.metrics_csv = Path(metrics_csv)
        self.resumed_at: list[int] = []
        self._out: Path | None = None  # set by setup, once the output dir is known to be writable
        self._pace = Pace()  # a seconds interval reads the clock every LOOK_SECONDS or so of steps

    def state_dict(self) -> dict[str, Any]:
        return {"resumed_at": list(self.resumed_at)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.resumed_at = [int(step) for step in state.get("resumed_at", [])]

    def setup(self, trainer: "Trainer") -> None:
        self.resumed_at = []
        self._out = output_dir(trainer, self.output_dir, "ArtifactExportCallback") if writes_outputs() else None

    def on_fit_start(self, trainer: "Trainer") -> None:
        if trainer.resumed_from is not None and trainer.step not in self.resumed_at:
            self.resumed_at.append(trainer.step)
        self.schedule.done(trainer.step)

    def next_due(self, trainer: "Trainer") -> float:
        if self.schedule.seconds is None:
            return self.schedule.next_step
        return min(self.schedule.next_step, self._pace.next_look(trainer.step, self.schedule.clock()))

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        if self.schedule.due(trainer.step):
            self.export(trainer)
            self.schedule.done(trainer.step)

    def on_fit_end(self, trainer: "Trainer", reason: str) -> None:
        self.export(trainer)

    def export(self, trainer: "Trainer") -> None:
        """Write the artifacts now (a failure to write is logged; training goes on)."""
        if self._out is None:  # not process 0, or setup never ran or failed: nowhere checked to write
            return
        try:
            self._write_progress(trainer)
            self._write_curves(trainer)
        except OSError as err:
            log.warning("artifacts: could not write to %s (%s); training goes on", self._out, err)

    def _write_progress(self, trainer: "Trainer") -> None:
        published = trainer.summary()
        reason = trainer.stop_reason
        write_json(
            self._out / PROGRESS,
            {
                "step": trainer.step,
                "max_steps": trainer.max_steps,
                "time": time.time(),
                "stop_reason": str(reason) if reason is not None else None,
                "resumed_at": self.resumed_at,
                "last_checkpoint": latest_checkpoint(trainer, self._out),
                "metrics_step": published.get("metrics_step"),
                "metrics": dict(published.get("metrics", {})),
            },
        )

    def _write_curves(self, trainer: "Trainer") -> None:
        csv_path = self.metrics_csv if self.metrics_csv.is_absolute() else Path(trainer.run_dir) / self.metrics_csv
        if not csv_path.exists():
            return
        if csv_path.parent.resolve() != self._out.resolve():
            with open(csv_path, "rb") as source:
                atomic_write(self._out / csv_path.name, lambda out: shutil.copyfileobj(source, out))
        of = f" of {trainer.max_steps:,}" if trainer.max_steps is not None else ""
        title = f"{trainer.run_dir.name} · step {trainer.step:,}{of}"
        write_training_curves(csv_path, self._out / CURVES, self.resumed_at, title)
