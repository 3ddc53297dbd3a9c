"""RichProgressCallback: what a person watching the run wants to see, refreshed once a second at most.

    step 12,000/50,000 (24%) ━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 812.4 steps/s ETA 0:00:46
    budget 11:02:13 left · ckpt 10,000 (0:00:41 ago) · loss 0.01234 · grad_norm 0.4512

- steps/s from the host's clock over the last ~30 refreshes (with asynchronous dispatch
  the host runs at most a bounded queue ahead, so this is the device's pace), ETA from it
  (with `max_steps=None`: the step alone, no bar or ETA);
- the time budget left, `time_left` in `trainer.summary()` (published by
  `TimeBudgetCallback` / `KaggleTimeoutCallback`);
- the last checkpoint's step and age, from `on_save_checkpoint` (or the one resumed from);
- the latest values a metrics logger wrote, `metrics` in `trainer.summary()` (published
  by `LogThrottleCallback`): nothing is fetched from the device here.

Where it shows: a live bar in a terminal; an in-place display in a Jupyter notebook
(Kaggle, Colab; via IPython's display handles, no ipywidgets needed); and when stdout is
not a terminal (CI, a Kaggle batch log), one plain line every `plain_every_n_seconds`
so the log stays short. Per call it reads the clock and compares: no device sync, ever.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from emergence.callbacks.base import Callback, Metrics, Trainer  # Trainer = Any: the Trainer imports this module
from emergence.metrics.console_sink import format_values
from emergence.schedule import Pace, check_interval

if TYPE_CHECKING:
    from emergence.checkpoint import CheckpointRef

RATE_SAMPLES = 30
BAR_WIDTH = 40


class RichProgressCallback(Callback):
    """A progress display for `fit()`; see the module docstring.

    Args:
        every_n_seconds: refresh interval of the live bar or notebook display.
        plain_every_n_seconds: interval between plain lines when stdout is not a terminal.
        console: the rich `Console` to draw on (default: a new one on stdout, made in `setup`).
        metrics: which logged tags to show (default: the first `max_metrics` there are).
        max_metrics: how many tags to show when `metrics` is None.
        clock: monotonic seconds (inject a fake one in tests).
    """

    def __init__(
        self,
        every_n_seconds: float = 1.0,
        *,
        plain_every_n_seconds: float = 60.0,
        console: Console | None = None,
        metrics: Sequence[str] | None = None,
        max_metrics: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_interval("RichProgressCallback: every_n_seconds", every_n_seconds, integer=False)
        check_interval("RichProgressCallback: plain_every_n_seconds", plain_every_n_seconds, integer=False)
        self.every_n_seconds = every_n_seconds
        self.plain_every_n_seconds = plain_every_n_seconds
        self.console = console
        self.metrics = list(metrics) if metrics is not None else None
        self.max_metrics = max_metrics
        self.clock = clock
        self.mode = "plain"
        self._console: Console | None = None
        self._live: Live | None = None
        self._notebook: Any = None
        self._samples: deque[tuple[float, int]] = deque(maxlen=RATE_SAMPLES)
        self._checkpoint: tuple[int, float | None] | None = None
        self._next_refresh = 0.0
        self._pace = Pace()

    def setup(self, trainer: "Trainer") -> None:
        self._console = self.console or Console()
        if self._console.is_jupyter:
            self.mode = "notebook"
        elif self._console.is_terminal and not self._console.is_dumb_terminal:
            self.mode = "live"
        else:
            self.mode = "plain"
        self._samples.clear()
        self._checkpoint, self._notebook = None, None

    def on_fit_start(self, trainer: "Trainer") -> None:
        if trainer.resumed_from is not None:
            self._checkpoint = (trainer.resumed_from.step, None)
        now = self.clock()
        self._samples.append((now, trainer.step))
        if self.mode == "live":
            self._live = Live(self._render(trainer, now), console=self._console, auto_refresh=False)
            self._live.start(refresh=True)
        self._show(trainer, now)

    def next_due(self, trainer: "Trainer") -> float:
        return self._pace.next_look(trainer.step, self.clock())  # refreshes are seconds apart: no clock every call

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        now = self.clock()
        if now >= self._next_refresh:
            self._samples.append((now, trainer.step))
            self._show(trainer, now)

    def on_save_checkpoint(self, trainer: "Trainer", ref: "CheckpointRef") -> None:
        self._checkpoint = (ref.step, self.clock())

    def on_fit_end(self, trainer: "Trainer", reason: str) -> None:
        now = self.clock()
        self._samples.append((now, trainer.step))
        self._show(trainer, now, final=f"stopped: {reason}")
        self._stop_live()

    def teardown(self, trainer: "Trainer") -> None:
        self._stop_live()

    @property
    def steps_per_second(self) -> float | None:
        """Steps per second over the recent refreshes, once there are two apart in time."""
        if len(self._samples) < 2:
            return None
        (t0, s0), (t1, s1) = self._samples[0], self._samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else None

    def status(self, trainer: "Trainer", now: float) -> list[str]:
        """The parts after the bar: rate, ETA, budget, last checkpoint, latest metrics."""
        rate = self.steps_per_second
        end = trainer.max_steps
        parts = [
            f"{rate:,.1f} steps/s" if rate is not None else "– steps/s",
            f"ETA {_hms((end - trainer.step) / rate)}" if rate and end is not None else "ETA –",
        ]
        published = trainer.summary()
        if published.get("time_left") is not None:
            parts.append(f"budget {_hms(published['time_left'])} left")
        if self._checkpoint is not None:
            step, saved_at = self._checkpoint
            age = "resumed" if saved_at is None else f"{_hms(now - saved_at)} ago"
            parts.append(f"ckpt {step:,} ({age})")
        values = self._shown_metrics(published.get("metrics", {}))
        if values:
            parts.append(format_values(values))
        return parts

    def _shown_metrics(self, latest: dict[str, float]) -> dict[str, float]:
        tags = self.metrics if self.metrics is not None else list(latest)[: self.max_metrics]
        return {tag: latest[tag] for tag in tags if tag in latest}

    def _show(self, trainer: "Trainer", now: float, final: str | None = None) -> None:
        interval = self.plain_every_n_seconds if self.mode == "plain" else self.every_n_seconds
        self._next_refresh = now + interval
        if self.mode == "plain":
            parts = [_steps(trainer), *self.status(trainer, now), *([final] if final else [])]
            self._console.print(Text(" · ".join(parts)), soft_wrap=True)
        elif self.mode == "live" and self._live is not None:
            self._live.update(self._render(trainer, now, final), refresh=True)
        elif self.mode == "notebook":
            self._update_notebook(self._render(trainer, now, final))

    def _render(self, trainer: "Trainer", now: float, final: str | None = None) -> Table:
        parts = self.status(trainer, now)
        top = Table.grid(padding=(0, 1))
        bar = ProgressBar(total=trainer.max_steps, completed=trainer.step, width=BAR_WIDTH)  # total None: pulsing
        top.add_row(Text(_steps(trainer), style="bold"), bar, Text(parts[0]), Text(parts[1]))
        frame = Table.grid()
        frame.add_row(top)
        frame.add_row(Text(" · ".join(parts[2:] + ([final] if final else [])), style="dim"))
        return frame

    def _update_notebook(self, renderable: Table) -> None:
        from IPython.display import display

        if self._notebook is None:
            self._notebook = display(renderable, display_id=True)
        else:
            self._notebook.update(renderable)

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _steps(trainer: "Trainer") -> str:
    if trainer.max_steps is None:
        return f"step {trainer.step:,}"
    percent = 100.0 * trainer.step / trainer.max_steps
    return f"step {trainer.step:,}/{trainer.max_steps:,} ({percent:.0f}%)"


def _hms(seconds: float) -> str:
    """Seconds as H:MM:SS (negative shown as 0:00:00)."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
