"""WandbSink: the throttled logger's rows in a Weights & Biases run, with the trainer's step as the x-axis.

Each row is one `run.log({"trainer/step": step, **values})`. The run declares
`define_metric("*", step_metric="trainer/step")` (done by `WandbCallback`, which opens
the run), so charts plot against the trainer's step, not W&B's own `_step` counter.
That is what makes a resume work: W&B drops a row whose `_step` is not above the last
one it has ("step must only increase"), so rows logged again after a SIGKILL, for
steps the killed session had already logged past its checkpoint, would vanish if the
trainer's step were passed as `step=`; as a metric of its own they are kept.

W&B does not make rows durable when `log` returns: its service process writes the
run's `.wandb` file every 15 s (`x_transaction_log_flush_interval`) and uploads in the
background, and a SIGKILL of the training process takes both down with it. So the sink
keeps the rows it wrote in the last `replay_seconds` (default 60) and `WandbCallback`
puts those up to the checkpoint's step into every checkpoint; a resumed run logs them
again before anything new. A row may so appear twice, with the same values (resume is
exact), but none is lost.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from emergence.log import get_logger
from emergence.metrics.sink import SinkStart

log = get_logger("emergence.metrics")

STEP_METRIC = "trainer/step"
INSTALL_HINT = "pip install 'emergence[wandb]'"

Row = tuple[int, dict[str, float]]


def require_wandb() -> Any:
    """The `wandb` module, or a one-line ImportError that says how to install it."""
    try:
        import wandb
    except ImportError:
        raise ImportError(f"W&B logging needs the wandb package: {INSTALL_HINT}") from None
    return wandb


class WandbSink:
    """A `Sink` writing to the run a `WandbCallback` opened; pass `WandbCallback(...).sink` to `LogThrottleCallback`.

    Args:
        replay_seconds: how long a written row is kept for replay after a SIGKILL (see the
            module docstring); longer than W&B's transaction-log flush interval.
        max_replay_rows: at most this many rows are kept (the newest).
        clock: monotonic seconds (inject a fake one in tests).
    """

    def __init__(
        self, replay_seconds: float = 60.0, max_replay_rows: int = 2000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not replay_seconds >= 0:
            raise ValueError(f"replay_seconds must be >= 0 seconds, got {replay_seconds!r}")
        if not isinstance(max_replay_rows, int) or max_replay_rows < 0:
            raise ValueError(f"max_replay_rows must be a non-negative integer, got {max_replay_rows!r}")
        self.replay_seconds = replay_seconds
        self.clock = clock
        self.rows_written = 0
        self._run: Any = None
        self._recent: deque[tuple[float, int, dict[str, float]]] = deque(maxlen=max_replay_rows)
        self._warned_full = False

    @property
    def attached(self) -> bool:
        """Whether a run is open to write to."""
        return self._run is not None

    def attach(self, run: Any, replay: list[Row] = ()) -> None:
        """Write to `run` from now on, first logging `replay` (rows a checkpoint carried) again."""
        self._run = run
        self._recent.clear()
        for step, values in replay:
            self.write(int(step), values)

    def detach(self) -> None:
        """The run is finished: writes are an error until the next `attach`."""
        self._run = None

    def recent(self, up_to_step: int) -> list[Row]:
        """Rows written in the last `replay_seconds`, at or before `up_to_step`, oldest first (reading only)."""
        horizon = self.clock() - self.replay_seconds
        return [(step, dict(values)) for when, step, values in self._recent if when >= horizon and step <= up_to_step]

    def start(self, run: SinkStart) -> None:
        """Nothing to open: `WandbCallback` opens the W&B run (it knows the run id a checkpoint carries)."""

    def write(self, step: int, values: Mapping[str, float]) -> None:
        if self._run is None:
            raise RuntimeError("WandbSink has no W&B run: put its WandbCallback in the Trainer's callbacks too")
        row = {tag: float(value) for tag, value in values.items()}
        self._run.log({STEP_METRIC: step, **row})
        now = self.clock()
        while self._recent and self._recent[0][0] < now - self.replay_seconds:
            self._recent.popleft()
        if len(self._recent) == self._recent.maxlen and not self._warned_full:
            self._warned_full = True
            log.warning(
                "wandb: more than %d rows logged within %g s: after a SIGKILL the oldest of them may be "
                "missing from W&B; raise max_replay_rows or the logging interval",
                self._recent.maxlen,
                self.replay_seconds,
            )
        self._recent.append((now, step, row))
        self.rows_written += 1

    def flush(self) -> None:
        """W&B's service writes on its own schedule; the replay rows cover what it has not yet."""

    def close(self) -> None:
        """The run stays open until `WandbCallback.teardown` finishes it."""
