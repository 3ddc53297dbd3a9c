"""Scenario: drive callbacks through a real `fit()` with scripted trouble, and say what happened.

    scenario = Scenario(max_steps=20, run_dir=tmp_path / "run")
    outcome = (scenario.signal_at(7, signal.SIGTERM)      # a real signal, raised in-process
                       .clock_jump_at(5, 3600.0)          # scenario.clock jumps an hour
                       .disk_full_at(10)                  # checkpoint writes from step 10 fail: ENOSPC
                       .run(lambda clock: [MyCallback(clock=clock), SignalCheckpointCallback()]))
    outcome.stop_reason, outcome.hook_names(), outcome.checkpoints, outcome.files
    again = outcome.resume(max_steps=30)                  # a new fit() in the same run dir

Events are due at the first call boundary at or past their step (as every periodic
action is), fire once, in the order given, before any other callback's
`on_train_call_end` of that call. Only the events are fake: the Trainer, the
checkpoints, the signal delivery and the exceptions are the real ones. `run` takes the
callbacks, or a function of the scenario's clock returning them (needed for `resume`,
which builds them afresh, as a new process would).
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emergence.callbacks.base import HOOKS, Callback
from emergence.testing.clock import FakeClock
from emergence.testing.tasks import DivergingTask, toy_task

Callbacks = Sequence[Callback] | Callable[[FakeClock], Sequence[Callback]]


@dataclass(frozen=True)
class HookCall:
    """One hook the Trainer fired: its name, the trainer's step then, and its argument (reason, ref, kind, ...)."""

    hook: str
    step: int
    arg: Any = None


@dataclass
class Outcome:
    """What one `fit()` of a scenario did.

    Attributes:
        hooks: every hook the Trainer fired, in order.
        events: the scripted events that fired, as `(step, description)`.
        stop_reason: why training stopped, a `StopReason` (equal to its text: `max_steps`,
            `signal:SIGTERM`, `exception:RuntimeError`, ...).
        step: the step it stopped at.
        exception: what `fit()` raised (None when it returned).
        exit_code: the Trainer's `exit_code` (0 clean, 128 + signum after a signal, 1 after an exception).
        files: every file under the run dir, as sorted relative POSIX paths.
        trainer: the Trainer, for anything else.
        state: the state `fit()` returned (None when it raised).
    """

    scenario: "Scenario"
    callbacks: Callbacks
    trainer: Any
    hooks: list[HookCall]
    events: list[tuple[int, str]]
    exception: BaseException | None
    exit_code: int | None
    files: list[str] = field(default_factory=list)
    state: Any = None

    @property
    def stop_reason(self) -> Any:
        return self.trainer.stop_reason

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def checkpoints(self) -> list[str]:
        """Checkpoint file names on disk, sorted."""
        return sorted(Path(f).name for f in self.files if f.startswith("checkpoints/") and f.endswith(".safetensors"))

    def hook_names(self, *, include_calls: bool = False) -> list[str]:
        """The hooks fired, in order; `on_train_call_end` left out unless `include_calls`."""
        return [c.hook for c in self.hooks if include_calls or c.hook != "on_train_call_end"]

    def resume(self, **changes: Any) -> "Outcome":
        """Fit again in the same run dir (resume="auto"), the callbacks built afresh; `changes` edit the scenario."""
        if not callable(self.callbacks):
            raise TypeError("resume() builds the callbacks afresh: pass run() a function of the clock returning them")
        return self.scenario.but(**changes).run(self.callbacks)


class Scenario:
    """A scripted `fit()` of a tiny task; see the module docstring.

    Args:
        max_steps: steps to train.
        run_dir: where the run writes (default: a fresh temporary directory).
        task: the task (default: `toy_task()`).
        clock: the scenario's `FakeClock` (pass it to your callbacks).
        seconds_per_call: how far the clock moves after each call (default: 1 s).
        trainer_args: anything else for the `Trainer` (`steps_per_call`, `eval_every_n_steps`, ...).
    """

    def __init__(
        self,
        max_steps: int = 20,
        run_dir: str | Path | None = None,
        task: Any = None,
        clock: FakeClock | None = None,
        seconds_per_call: float = 1.0,
        **trainer_args: Any,
    ) -> None:
        self.max_steps = max_steps
        self.run_dir = Path(run_dir) if run_dir is not None else _temporary_dir()
        self.task = task
        self.clock = clock if clock is not None else FakeClock()
        self.seconds_per_call = seconds_per_call
        self.trainer_args = trainer_args
        self.events: list[tuple[int, str, Callable[[Any], None]]] = []
        self.disk_full_from: int | None = None
        self.stops = False  # a stop_at is scripted: the run can end before max_steps (max_steps=None is fine)

    def but(self, **changes: Any) -> "Scenario":
        """A copy without events or a full disk, sharing the run dir, task and clock; `changes` override settings."""
        settings = {
            "max_steps": self.max_steps,
            "run_dir": self.run_dir,
            "task": self.task,
            "clock": self.clock,
            "seconds_per_call": self.seconds_per_call,
            **self.trainer_args,
            **changes,
        }
        return Scenario(**settings)

    def signal_at(self, step: int, signum: int = signal.SIGTERM) -> "Scenario":
        """Raise a real `signum` in this process at `step` (something must handle it: SignalCheckpointCallback)."""
        name = signal.Signals(signum).name

        def send(trainer: Any) -> None:
            if signal.getsignal(signum) == signal.SIG_DFL:
                raise RuntimeError(
                    f"signal_at({step}, {name}): nothing in this process handles {name}, so it would "
                    f"end the test run; add SignalCheckpointCallback (or your own handler)"
                )
            signal.raise_signal(signum)

        return self._add(step, f"signal {name}", send)

    def clock_jump_at(self, step: int, seconds: float) -> "Scenario":
        """Move the scenario's clock forward by `seconds` at `step`."""
        return self._add(step, f"clock +{seconds:g} s", lambda trainer: self.clock.advance(seconds))

    def raise_at(self, step: int, exception: BaseException | None = None) -> "Scenario":
        """Raise `exception` (default `RuntimeError("scripted failure")`) at `step`, as a failing step would."""
        error = exception if exception is not None else RuntimeError(f"scripted failure at step {step}")

        def fail(trainer: Any) -> None:
            raise error

        return self._add(step, f"raise {type(error).__name__}", fail)

    def stop_at(self, step: int, reason: str = "scripted") -> "Scenario":
        """Ask the trainer to stop at `step` with `reason`, as a time budget or early stopping would."""
        self.stops = True
        return self._add(step, f"stop {reason!r}", lambda trainer: trainer.request_stop(reason))

    def disk_full_at(self, step: int) -> "Scenario":
        """From `step` on, every checkpoint write fails with ENOSPC (a full disk), nothing written."""
        self.disk_full_from = step
        return self

    def nan_at(self, step: int, *, every_time: bool = False) -> "Scenario":
        """Train a `DivergingTask`: NaN params and loss at `step` (see `emergence.testing.tasks`)."""
        self.task = DivergingTask(step, every_time=every_time, task=self.task)
        return self

    def run(self, callbacks: Callbacks = ()) -> Outcome:
        """One real `fit()` with the events; what it did. Exceptions (SystemExit too) are caught into the outcome."""
        from emergence.trainer import Trainer

        built = list(callbacks(self.clock) if callable(callbacks) else callbacks)
        director = _Director(self)
        trainer = Trainer(
            callbacks=[director, *built], max_steps=self.max_steps, run_dir=self.run_dir, **self.trainer_args
        )
        exception, state = None, None
        with _disk_full(self.disk_full_from):
            try:
                state = trainer.fit(self.task if self.task is not None else toy_task())
            except BaseException as err:  # the outcome reports it; KeyboardInterrupt from SIGINT too
                exception = err
        exit_code = trainer.exit_code
        files = sorted(p.relative_to(self.run_dir).as_posix() for p in self.run_dir.rglob("*") if p.is_file())
        return Outcome(self, callbacks, trainer, director.calls, director.fired, exception, exit_code, files, state)

    def _add(self, step: int, description: str, action: Callable[[Any], None]) -> "Scenario":
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"a scripted event needs a step >= 1, got {step!r}")
        self.events.append((step, description, action))
        return self


class _Director(Callback):
    """First in the list: records every hook and fires the scenario's events at their steps."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.calls: list[HookCall] = []
        self.fired: list[tuple[int, str]] = []
        self._pending = sorted(scenario.events, key=lambda event: event[0])
        self.can_stop = scenario.stops  # the Trainer's max_steps=None warning asks every callback

    @property
    def state_key(self) -> str:
        return "emergence.testing.Scenario"

    def _record(self, hook: str, trainer: Any, args: tuple[Any, ...]) -> None:
        self.calls.append(HookCall(hook, trainer.step, args[0] if args and hook != "on_train_call_end" else None))
        if hook == "on_train_call_end":
            self._tick(trainer)

    def _tick(self, trainer: Any) -> None:
        self.scenario.clock.advance(self.scenario.seconds_per_call)
        while self._pending and self._pending[0][0] <= trainer.step:
            step, description, action = self._pending.pop(0)
            self.fired.append((trainer.step, description))
            action(trainer)


def _recording(hook: str) -> Callable[..., None]:
    def method(self: _Director, trainer: Any, *args: Any) -> None:
        self._record(hook, trainer, args)

    method.__name__ = hook
    return method


for _hook in HOOKS:  # the Trainer calls only the hooks a class overrides: the director overrides them all
    setattr(_Director, _hook, _recording(_hook))


@contextmanager
def _disk_full(from_step: int | None) -> Iterator[None]:
    """While active, checkpoint writes of a step >= `from_step` fail with ENOSPC before writing anything."""
    if from_step is None:
        yield
        return
    import emergence.checkpoint.durable as durable  # where every durable save writes its file

    real = durable.write_checkpoint

    def full(path: Any, arrays: Any, manifest: dict, *args: Any, **kwargs: Any) -> Any:
        if int(manifest.get("step", 0)) >= from_step:
            raise OSError(errno.ENOSPC, "No space left on device (scripted)", str(path))
        return real(path, arrays, manifest, *args, **kwargs)

    durable.write_checkpoint = full
    try:
        yield
    finally:
        durable.write_checkpoint = real


def _temporary_dir() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="emergence-scenario-")) / "run"
