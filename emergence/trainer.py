"""The Trainer: runs jitted train steps, fires the hooks that are due, carries out requests, resumes.

The loop stays plain: one jitted call (of `steps_per_call` fused steps) per iteration,
then the hooks that are due, then one save point. Callbacks ask (`request_save`,
`request_stop`), the Trainer decides: requests are carried out at the save point after
all of a call's hooks, the checkpoint that ends a run is written once, from the stop
(`StopReason`), and the exit code is the Trainer's (`exit_code`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from emergence.callbacks.base import EVERY_CALL, Callback, Metrics, hook_table, overrides
from emergence.callbacks.progress import RichProgressCallback
from emergence.calls import CallTracker
from emergence.checkpoint import AnyOf, CheckpointFile, CheckpointManager, CheckpointRef, Durable, SavePolicy
from emergence.checkpoint.async_writer import AsyncCheckpointWriter, writer_from
from emergence.checkpoint.manifest import check_config
from emergence.checkpoint.restore import host_metrics
from emergence.checkpoint.tree import check_storable
from emergence.data.evaluation import evaluate_over
from emergence.data.feed import TrainFeed
from emergence.data.placement import BatchPlacement
from emergence.log import get_logger
from emergence.metrics.totals import MetricTotals
from emergence.parallel.mesh import DataParallel, Devices
from emergence.parallel.process_zero import writes_outputs
from emergence.parallel.stops import Stops
from emergence.platforms.detect import platform_name
from emergence.platforms.process import in_ipython_kernel, jax_devices
from emergence.schedule import Every
from emergence.state import TrainState
from emergence.stop import StopReason, as_stop_reason
from emergence.task import Task, checkpoint_upgrade, task_config, task_name
from emergence.train_call import TrainCalls

log = get_logger("emergence.trainer")

Resume = Literal["auto"] | str | os.PathLike | None

ASYNC_KINDS = ("periodic", "best")
DATA_KEY = "emergence.train_data"  # the data position's entry beside the callbacks' state in a manifest


class SaveRequest(NamedTuple):
    """A save a callback asked for, carried out at the next save point."""

    kind: str
    reason: str | None
    metrics: dict[str, float] | None


class Trainer:
    """Runs a `Task` for `max_steps` train steps with callbacks.

    Both of Lightning's shapes work: `Trainer(callbacks=[...], max_steps=N).fit(task)` and
    `Trainer(task, [...], max_steps=N).fit()`; the task goes in exactly one of the two places.

    Args:
        task: the `Task` to train (or pass it to `fit`).
        callbacks: `Callback`s, fired in this order.
        max_steps: train steps to reach (counted across resumes); None trains until a callback
            stops the run (a time budget, a signal, early stopping: callbacks with `can_stop`),
            with a warning at `fit()` start when none can. A function of the state (fresh or resumed)
            to the steps to reach is called once per `fit()`, before `on_fit_start`, for a task whose
            length is not counted in train steps (the lab's env steps, when the update size changed).
        steps_per_call: steps fused into one jitted `lax.scan` call; hooks fire per call.
        run_dir: where checkpoints and artifacts go (default `runs/<task name>`, once the task is known).
        resume: `"auto"` (newest valid checkpoint in the run dir, else start fresh),
            a checkpoint file or directory (which is only read), or None (start fresh).
        seed: seeds `init_state` when not resuming.
        eval_every_n_steps: run `eval_step` and fire `on_validation_end` this often.
        force_resume: resume even if a structural config key changed.
        overwrite: a fresh start (resume None, or `"auto"` finding nothing of this run) in a run
            dir that already holds checkpoints or metrics moves them into `previous-<time>/`
            instead of being refused (`RunDirInUseError`); see `CheckpointManager.open`.
        async_checkpoint: write `periodic` and `best` checkpoints asked for inside the
            training loop (from `on_fit_start` on) on a background thread (default): the
            loop blocks only while the state is copied off the device. `on_save_checkpoint`
            still fires once the file is durable: at the first call boundary after, or when a
            later save or the end of the loop waits for it. A failed background write raises
            its `CheckpointWriteError` there. `emergency` and `final` saves, and every save
            outside the loop, are durable before `save_checkpoint` returns. False writes
            every save synchronously; an `AsyncCheckpointWriter` is used as given (tests pass
            one to hold writes back).
        devices: None (default: JAX's default device, no mesh), or data parallel: `"all"` (under
            `jax.distributed`, every process's; only process 0 writes checkpoints), the first N
            local devices, or a list of `jax.Device`. The state is placed on a
            one-axis mesh as the task's optional `state_sharding(mesh, state)` says (else
            replicated) after init or restore; see `emergence.parallel`. Checkpoints are
            written gathered and resume onto any device count.
        progress: add a `RichProgressCallback` unless the list has one: `"auto"` (default)
            where a person watches (stdout a terminal, or a notebook kernel), as Keras'
            `verbose="auto"` does; True also in a log (a plain line a minute); False never.

    `last_save_seconds` is how long the last durable save took from snapshot to durable
    file (what the same save costs written synchronously), set before its
    `on_save_checkpoint` fires: the figure a time budget needs for the final save.

    `request_stop` proposes a stop to `stops` (`Stops`): agreed at once on one process;
    under `jax.distributed` (`jax.process_count() > 1`, checked once as `fit()` starts)
    agreed every few calls before the call's hooks, so every process stops (and saves) at
    the same step; emergency and final saves end with a barrier once process 0's file is
    durable. `stop_reason` is the agreed `StopReason`, `exit_code` (once `fit()` ended)
    what the process should exit with. `calls` tracks the train calls in flight
    (`CallTracker`) for the callbacks that need call completion or timing; it is fed when
    a hook is due and one `watch()`es it. `summary()` merges what callbacks publish.
    """

    def __init__(
        self,
        task: Task | None = None,
        callbacks: Sequence[Callback] = (),
        *,
        max_steps: int | Callable[[Any], int] | None = None,
        steps_per_call: int = 1,
        run_dir: str | os.PathLike | None = None,
        resume: Resume = "auto",
        seed: int = 0,
        eval_every_n_steps: int | None = None,
        force_resume: bool = False,
        overwrite: bool = False,
        async_checkpoint: bool | AsyncCheckpointWriter = True,
        devices: Devices | None = None,
        max_epochs: int | None = None,
        progress: bool | Literal["auto"] = "auto",
    ) -> None:
        if isinstance(task, (list, tuple)):
            raise TypeError("Trainer's first argument is the task; pass the callback list as callbacks=[...]")
        self.length_rule = max_steps if callable(max_steps) else None
        max_steps = None if callable(max_steps) else max_steps
        if max_steps is not None:
            _check_positive(max_steps=max_steps)
        _check_positive(steps_per_call=steps_per_call)
        if eval_every_n_steps is not None:
            _check_positive(eval_every_n_steps=eval_every_n_steps)
        if max_epochs is not None:
            _check_positive(max_epochs=max_epochs)
        self.max_epochs = max_epochs
        self.task: Task | None = None
        self.callbacks = with_default_progress(list(callbacks), progress)
        self.max_steps = max_steps
        self.steps_per_call = steps_per_call
        self._run_dir_given = run_dir is not None
        self.run_dir: Path | None = Path(run_dir) if run_dir is not None else None
        self.resume = resume
        self.seed = seed
        self.eval_every_n_steps = eval_every_n_steps
        self.force_resume = force_resume
        self.overwrite = overwrite
        self._writer = writer_from(async_checkpoint, "async_checkpoint")
        self.checkpoints: CheckpointManager | None = None
        self.parallel = None if devices is None else DataParallel(devices)
        self._hooks = hook_table(self.callbacks)
        self._call_end = [  # (the callback, its hook, its next_due or None: due at every call, nothing to ask)
            (cb, cb.on_train_call_end, cb.next_due if overrides(cb, "next_due") else None)
            for cb in self.callbacks
            if overrides(cb, "on_train_call_end")
        ]
        self._publishers = [cb for cb in self.callbacks if overrides(cb, "summary")]
        self._calls: TrainCalls | None = None
        self._platform: dict[str, Any] | None = None
        self._eval_call: Callable | None = None
        self._evaluation = None if eval_every_n_steps is None else Every(eval_every_n_steps, owner="Trainer eval")
        self._task_given = task
        if task is not None:
            self._bind(task)
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._state: TrainState | None = None
        self._step = 0
        self.fit_start_step = 0
        self._stop: StopReason | None = None
        self.exit_code: int | None = None
        self._requests: list[SaveRequest] = []
        self._logged: dict[str, float] = {}
        self.metric_totals = MetricTotals(lambda: self._step)  # loggers' channels (setup), folded in the train call
        self._ending = False
        self._due_at: list[float] = [EVERY_CALL] * len(self._call_end)
        self._next_due: float = EVERY_CALL
        self.last_metrics: Metrics = {}
        self.last_eval_metrics: Metrics = {}
        self.last_checkpoint: CheckpointRef | None = None
        self.last_save_seconds: float | None = None
        self.resumed_from: CheckpointRef | None = None
        self.fitting = False
        self._in_loop = False
        self._save_due: float = float("inf")
        self.stops = Stops(on_agreed=self._stopped)
        self.calls = CallTracker()
        self.feed: TrainFeed | None = None
        self._val_data: Any = None

    def _bind(self, task: Task) -> None:
        """Make `task` the one this trainer trains (checked as the constructor or `fit` receives it)."""
        if self.eval_every_n_steps is not None and not callable(getattr(task, "eval_step", None)):
            raise ValueError("eval_every_n_steps is set but the task has no eval_step; add one or drop it")
        if task is not self.task or self._calls is None:
            self._calls, self._eval_call = TrainCalls(task, self.parallel), None
        self.task = task
        if not self._run_dir_given:
            self.run_dir = Path("runs") / task_name(task)

    def _task_for_fit(self, task: Task | None) -> Task:
        if task is not None and self._task_given is not None:
            raise ValueError("a task was given to both Trainer(...) and fit(...); pass it in one place")
        chosen = task if task is not None else self._task_given
        if chosen is None:
            raise ValueError("no task to train: pass one to fit(task) (or to Trainer(task, ...))")
        return chosen

    @property
    def state(self) -> TrainState | None:
        """The state after the last completed call (device arrays)."""
        return self._state

    @property
    def step(self) -> int:
        """Completed train steps, tracked on the host (reading it never syncs)."""
        return self._step

    @property
    def stop_reason(self) -> StopReason | None:
        """Why training stopped (or the agreed stop it is stopping for), once there is one."""
        return self._stop

    @property
    def checkpoint_dir(self) -> Path:
        """Where this run writes its checkpoints."""
        if self.run_dir is None:
            raise ValueError("the run dir is not known before the task: pass run_dir= to Trainer, or a task first")
        return self.run_dir / "checkpoints"

    def request_stop(self, reason: StopReason | str, *, any_process: bool = False) -> None:
        """Ask the run to stop at the next call boundary (a string names a `user` stop); the first agreed stop wins.

        Only sets attributes: safe from a signal handler. Under `jax.distributed` the stop
        is agreed across processes first (`trainer.stops`): `any_process=True` for
        something one process sees (a signal), else process 0's request counts.
        """
        self.stops.propose(as_stop_reason(reason), any_process=any_process)

    def request_save(
        self,
        kind: str,
        reason: str | None = None,
        *,
        metrics: dict[str, float] | None = None,
    ) -> None:
        """Ask for a `periodic` or `best` checkpoint of this step, written at the save point after this call's hooks.

        `metrics` join the manifest's (a `best` file is ranked by them). What is kept is the
        checkpoint manager's business (`Callback.keep_policies`); the checkpoint that ends the
        run is not requested: the Trainer writes it from the stop (`Callback.saves_on_stop`).
        """
        if kind not in ASYNC_KINDS:
            raise ValueError(
                f"request_save takes 'periodic' or 'best', got {kind!r}; the final or emergency checkpoint is "
                f"the Trainer's, written at the stop for callbacks whose saves_on_stop names its kind"
            )
        self._requests.append(SaveRequest(kind, reason, metrics))

    def log(self, values: dict[str, float]) -> None:
        """Host values (floats) that join the train metrics of every later call, from the next one on, until
        logged again: how a callback adds a metric for the loggers (Lightning's `self.log`) without touching a
        call's metrics, which every callback sees alike. Values logged in `on_fit_start` join the first call;
        they are not kept in checkpoints, so a callback whose values must survive a resume logs them there."""
        bad = {name: value for name, value in values.items() if not isinstance(value, (int, float))}
        if bad:
            raise TypeError(f"trainer.log takes host numbers (a float per name), got {bad!r}")
        self._logged = {**self._logged, **values}
        self.metric_totals.log(values)

    def summary(self) -> dict[str, Any]:
        """What the callbacks publish (each one's `summary()`, merged in list order): the one channel between them."""
        merged: dict[str, Any] = {}
        for callback in self._publishers:
            merged.update(callback.summary())
        return merged

    @property
    def epoch(self) -> int | None:
        """With `train_data`: the epochs finished before the last batch trained on (saved in every checkpoint)."""
        return None if self.feed is None else self.feed.epoch

    def fit(self, task: Task | None = None, *, train_data: Any = None, val_data: Any = None) -> TrainState:
        """Train `task` (or the one given to the constructor) until `max_steps` or a stop; return the final state.

        With `train_data` (any iterable of pytrees of arrays, or a Grain dataset or loader:
        docs/your_data.md) the task's `train_step(state, batch)` gets one batch per step,
        `steps_per_call` of them stacked per call and prepared on a worker thread; the data
        ends the run after `max_epochs` (a `max_epochs` stop) and its position is saved in
        every checkpoint, so a resume goes on at the next unread batch. With `val_data`,
        `evaluate()` runs `eval_step(state, batch)` over all of it, averaged per example.

        The flow, in the order it is stated here and in `_train_loop` (do not reorder: the
        outcome must not depend on the order of the callback list):
        setup → state (fresh or resumed) → on_fit_start → save point → the loop (per call:
        step, agree on stops, due `on_train_call_end` hooks, evaluation, save point) → the
        stop → the end checkpoint (final or emergency, from the stop) → on_fit_end →
        teardown. An exception anywhere becomes an `exception` stop: on_exception, the
        emergency checkpoint, on_fit_end, teardown, and the exception is re-raised.
        `exit_code` is set from the stop (0 clean, 128 + signum, 1): a script or the CLI
        applies it; `fit()` itself never exits the process.
        """
        self._bind(self._task_for_fit(task))
        self._reset_run_state()
        if train_data is None and self.max_epochs is not None:
            raise ValueError(
                "max_epochs counts passes over train_data; pass fit(task, train_data=...) or use max_steps"
            )
        self._val_data = val_data
        if train_data is not None:
            mesh = None if self.parallel is None else self.parallel.mesh
            self.feed = TrainFeed(
                train_data,
                steps_per_call=self.steps_per_call,
                max_epochs=self.max_epochs,
                placement=BatchPlacement(mesh),
            )
        if jax.process_count() > 1:
            self.stops = Stops(jax.process_count(), on_agreed=self._stopped)
        self._warn_if_unstoppable()
        self.checkpoints, resume_file = self._open_run_dir()  # before any hook: nothing is written if refused
        self.fitting = True
        try:
            self._fire("setup")
            self._state = self._initial_state(resume_file)
            if self.feed is None:  # with train_data, at the first batch (its shapes are the data's)
                self._calls.check(self._state, eval_too=self._val_data is None)
            self.fit_start_step = self._step
            self.checkpoints.start(self._step)
            if self._evaluation is not None:
                self._evaluation.done(self._step)
            self._in_loop = True
            self._fire("on_fit_start")
            self._save_point()
            self._train_loop()
            self._in_loop = False
            self.checkpoints.wait_until_finished()
            self._report_durable()
            self._end_checkpoint()
        except BaseException as exc:
            self._in_loop = False
            self._settle_quietly()
            failed_at_end = self._ending  # the end checkpoint itself failed: the stop stays what it was
            if not failed_at_end:
                self._stop = StopReason.of_exception(exc)
            self._fire("on_exception", exc)
            if not failed_at_end:
                self._end_checkpoint_quietly()
            self._fire("on_fit_end", self._stop)
            self.exit_code = 1
            raise
        else:
            self._fire("on_fit_end", self._stop)
            self.exit_code = self._stop.exit_code
        finally:
            self.fitting = False
            self._settle_quietly()
            self.checkpoints.close()
            if self.feed is not None:
                self.feed.close()
            self._fire("teardown")
            if self._stop is not None and self._stop.kind == "signal":
                log.info("stopped by %s: fit() returns, exit code %d (trainer.exit_code)", self._stop, self.exit_code)
        return self._state

    def _warn_if_unstoppable(self) -> None:
        """With `max_steps=None`, say so when no callback can end the run (none has `can_stop`)."""
        unbounded = self.max_steps is None and self.length_rule is None and self.max_epochs is None
        if unbounded and not any(cb.can_stop for cb in self.callbacks):
            log.warning(
                "max_steps=None and no callback can stop the run (none has can_stop, as TimeBudgetCallback "
                "and SignalCheckpointCallback do): it trains until killed; set max_steps or add one"
            )

    def _stopped(self, reason: StopReason) -> None:
        """The agreed stop (from `stops`): the loop dispatches no call after this; the first one wins."""
        if self._stop is None:
            self._stop = reason

    def _train_loop(self) -> None:
        end = self.max_steps
        totals = self.metric_totals if self.metric_totals.folding else None
        compiled, with_batches, folding = self._calls.get, self.feed is not None, totals is not None
        batch: tuple[Any, ...] = ()
        while self._stop is None and (end is None or self._step < end):
            steps = self.steps_per_call if end is None else min(self.steps_per_call, end - self._step)
            if self.feed is not None:
                group = self.feed.next_call()
                if group is None:
                    self._stopped(StopReason("max_epochs"))
                    break
                self._calls.check(self._state, group.batch, stacked=group.steps > 1, eval_too=False)
                steps, batch = group.steps, (group.batch,)
            call = compiled(steps, with_batches, folding)
            if totals is None:
                self._state, metrics = call(self._state, *batch)
            else:
                if totals.array is None:  # the first call: the metrics' tags are known (the contract check)
                    totals.start(self._calls.metric_tags, place=self._place_totals)
                self._state, metrics, totals.array = call(self._state, totals.array, *batch)
            if self._logged:  # host values callbacks logged (`log`): one check per call when there are none
                metrics = {**metrics, **self._logged}
            self._step += steps
            self.last_metrics = metrics
            # One call's end, in this order; do not reorder (see `fit`): every hook of the call has
            # run before anything is saved, so what a checkpoint holds does not depend on the list order.
            self.stops.call_ended(last=end is not None and self._step >= end)  # 1. agree on a stop
            if self._step >= self._next_due:  # 2. the hooks that are due (one comparison until then)
                self._call_end_hooks(steps, metrics)
            if self._evaluation is not None and self._evaluation.due_by_steps(self._step):  # 3. evaluation
                self.evaluate()
                self._evaluation.done(self._step)
                self._refresh_due()
            if self._requests or self._step >= self._save_due:  # 4. the save point (one comparison until due)
                self._save_point()
        self._stopped(StopReason("max_steps"))

    def _place_totals(self, host: np.ndarray) -> jax.Array:
        """The metric totals on the device (replicated on the mesh, when there is one)."""
        return jnp.asarray(host) if self.parallel is None else self.parallel.replicate(host)

    def _call_end_hooks(self, steps: int, metrics: Metrics) -> None:
        """`on_train_call_end` of each callback whose `next_due()` step is reached; then the nearest next one."""
        if self.calls.watched:
            self.calls.offer(self._step, steps, metrics)
        nearest = float("inf")
        due_at = self._due_at
        for i, (_, hook, next_due) in enumerate(self._call_end):
            if self._step >= due_at[i]:
                hook(self, metrics)
                if next_due is not None:
                    due_at[i] = next_due(self)
            if due_at[i] < nearest:
                nearest = due_at[i]
        self._next_due = nearest

    def _refresh_due(self) -> None:
        """Ask every `on_train_call_end` callback when it is next due (after on_fit_start, a save, an evaluation)."""
        self._due_at = [EVERY_CALL if next_due is None else next_due(self) for _, _, next_due in self._call_end]
        self._next_due = min(self._due_at, default=float("inf"))

    def _save_point(self) -> None:
        """The one point where saves happen: finished background writes are reported (`on_save_checkpoint`), then a
        periodic save the manager's save policy calls due and each save requested since the last save point."""
        self._report_durable()
        manager, requests, self._requests = self.checkpoints, self._requests, []
        if self._step >= manager.next_step and manager.should_save(self._step):
            requests.insert(0, SaveRequest("periodic", "periodic", None))
        for request in requests:
            self.save_checkpoint(request.kind, reason=request.reason, metrics=request.metrics)
        self._save_due = 0 if manager.saving else manager.next_step  # asked after the policy looked
        self._refresh_due()

    def _report_durable(self) -> None:
        """Fire `on_save_checkpoint` for each save the manager made durable since the last report, oldest first."""
        for done in self.checkpoints.poll():
            self._saved(done)
        self._save_due = 0 if self.checkpoints.saving else self.checkpoints.next_step

    def _saved(self, done: Durable) -> None:
        self.last_checkpoint, self.last_save_seconds = done.ref, done.seconds
        self._fire("on_save_checkpoint", done.ref)

    def _settle_quietly(self) -> None:
        """Wait for a write in flight while `fit()` unwinds: a failure is logged (never raised), a success reported."""
        if self.checkpoints.settle() is None:
            try:
                self._report_durable()
            except Exception as err:  # a hook failing while another exception unwinds: that one wins
                log.error("on_save_checkpoint failed while fit() ended: %s", err)

    def _end_checkpoint(self) -> CheckpointRef | None:
        """The checkpoint that ends the run, once: of the kind the stop decides, when some callback's
        `saves_on_stop` names the stop's kind and a step was trained this session."""
        self._ending = True
        stop = self._stop
        if stop is None or not any(stop.kind in callback.saves_on_stop for callback in self.callbacks):
            return None
        kind = stop.end_kind
        last = self.last_checkpoint
        if last is not None and last.step == self._step and last.kind in ("final", "emergency"):
            return None  # written already (a script or a test called save_checkpoint)
        if self._state is None or self._step == self.fit_start_step:
            log.info("%s: nothing to save (no train call completed since step %d)", stop, self.fit_start_step)
            return None
        if _donated(self._state):
            log.warning(
                "%s: cannot save step %d: the failed jitted call had consumed the (donated) state; "
                "resume from the last checkpoint on disk",
                stop,
                self._step,
            )
            return None
        log.info("%s: saving a%s %s checkpoint of step %d", stop, "n" if kind[0] in "aeiou" else "", kind, self._step)
        return self.save_checkpoint(kind, reason=str(stop))

    def _end_checkpoint_quietly(self) -> None:
        """The end checkpoint while an exception unwinds `fit()`: a failure is logged, never replaces it."""
        try:
            self._end_checkpoint()
        except Exception as err:
            log.error("%s: the emergency checkpoint failed too: %s", self._stop, err)

    def evaluate(self) -> Metrics:
        """Run the task's `eval_step` (over all of `val_data`, averaged per example, when given); fire
        `on_validation_end`."""
        if self._eval_call is None:
            self._eval_call = jax.jit(self.task.eval_step)
        if self._val_data is not None:
            mesh = None if self.parallel is None else self.parallel.mesh
            self.last_eval_metrics = evaluate_over(self._eval_call, self._state, self._val_data, BatchPlacement(mesh))
        else:
            self.last_eval_metrics = self._eval_call(self._state)
        self._fire("on_validation_end", self.last_eval_metrics)
        return self.last_eval_metrics

    def save_checkpoint(
        self, kind: str, *, reason: str | None = None, metrics: dict[str, float] | None = None
    ) -> CheckpointRef:
        """Write a `kind` checkpoint of the current state now, through the checkpoint manager; its ref.

        The save point and the end of `fit()` call this; callbacks request saves instead
        (`request_save`), so every hook of a call has run before the state and the
        callbacks' `state_dict()`s are captured. A script or a test may call it directly. A
        `periodic` or `best` save inside the training loop is written on the manager's
        writer thread (the ref has no checksum until `on_save_checkpoint` reports it
        durable); every other save is durable, and reported, before this returns. A failed
        earlier background write raises its `CheckpointWriteError` (see `CheckpointManager.save`).
        """
        manager = self.checkpoints
        if manager is None:
            raise ValueError("save_checkpoint needs a fit() in progress (the checkpoint manager opens there)")
        state = self._state if self.parallel is None else self.parallel.gathered(self._state)
        background = self._in_loop and kind in ASYNC_KINDS and self.parallel is None
        try:
            ref = manager.save(
                self._step,
                state,
                kind=kind,
                reason=reason,
                config=task_config(self.task),
                callbacks=self._callback_states(),
                metrics={**host_metrics(self.last_metrics), **host_metrics(self.last_eval_metrics), **(metrics or {})},
                platform=self._where(),
                background=None if background else False,
            )
        finally:
            if self.parallel is not None and not background:
                self.parallel.saved_durably(manager.latest)
        if not manager.writes:
            self.last_checkpoint = ref
        self._report_durable()
        return ref

    def _callback_states(self) -> dict[str, Any]:
        """Every callback's `state_dict()` by `state_key`, and the data position (`DATA_KEY`) with `train_data`."""
        states = {cb.state_key: cb.state_dict() for cb in self.callbacks}
        if self.feed is not None:
            states[DATA_KEY] = self.feed.state_dict()
        return states

    def restore_checkpoint(
        self, ref: CheckpointRef | str | os.PathLike | None = None, *, fold_in: int | None = None
    ) -> CheckpointRef:
        """Replace the current state with a checkpoint's (read and verified), e.g. to roll back a diverged run.

        `ref` None: the newest checkpoint this run has, after waiting for a write in flight
        (a `CheckpointNotFoundError` when there is none). Only the train state changes: the
        step counter, the callbacks' state and the schedules go on, so every history stays
        monotonic. `fold_in` folds that number into every typed PRNG key of the state (an
        `rng`, a flax `key` field, NNX `Rngs`; see `fold_rng`), so the steps after do not
        repeat. Returns the ref restored.
        """
        if self._state is None or self.checkpoints is None:
            raise ValueError(
                "restore_checkpoint replaces the state of a run in fit(); to load a checkpoint for inference, "
                "use emergence.load_state(task, path)"
            )
        self._state, restored = self.checkpoints.restore(
            self._state, ref, fold_in=fold_in, upgrade=checkpoint_upgrade(self.task)
        )
        self._report_durable()
        return restored

    def _where(self) -> dict[str, Any]:
        """What the manifest records of where the run is: platform name, JAX backend, device kinds and count."""
        if self._platform is None:
            self._platform = {"name": platform_name(), **jax_devices()}
        return self._platform

    def _open_run_dir(self) -> tuple[CheckpointManager, CheckpointFile | None]:
        """The run dir's manager, opened (its lock taken), and the checkpoint to resume, or None for a fresh start.

        Decided before `setup` fires, so a refusal (another writer holds the run dir; a fresh
        start in a used run dir without `overwrite`) leaves every file as it was: no sink has
        opened `metrics.csv` yet.
        """
        manager = self._checkpoint_manager().open(overwrite=self.overwrite)  # fails fast if not writable
        try:
            return manager, manager.find_resume(self.resume)
        except BaseException:
            manager.close()
            raise

    def _initial_state(self, file: CheckpointFile | None) -> TrainState:
        fresh = self.task.init_state(jax.random.key(self.seed))
        check_storable(fresh)  # an unstorable leaf fails here, at fit() start, not at the first save
        if self.parallel is not None:
            fresh = self.parallel.place(self.task, fresh)  # restore_state places leaves like these
        if file is None:
            self._resolve_length(fresh)
            self._open_feed(None)
            return fresh
        check_config(
            file.manifest.get("config", {}),
            task_config(self.task),
            set(getattr(self.task, "structural_keys", ())),
            self.force_resume,
        )
        state, self.resumed_from = self.checkpoints.restore(fresh, file, upgrade=checkpoint_upgrade(self.task))
        self._step = self.resumed_from.step
        self._resolve_length(state)
        saved = file.manifest.get("callbacks", {})
        for callback in self.callbacks:
            if callback.state_key in saved:
                callback.load_state_dict(saved[callback.state_key])
        self._open_feed(saved.get(DATA_KEY))
        self._state = state
        self._fire("on_load_checkpoint", self.resumed_from)
        return state

    def _resolve_length(self, state: TrainState) -> None:
        """`max_steps` from the state, when it was given as a function of it (`length_rule`)."""
        if self.length_rule is not None:
            steps = self.length_rule(state)
            _check_positive(max_steps=steps)
            self.max_steps = steps

    def _open_feed(self, saved: dict[str, Any] | None) -> None:
        """Start the data at the position a checkpoint kept (None: the start), reading no more than max_steps needs."""
        if self.feed is not None:
            left = None if self.max_steps is None else max(0, self.max_steps - self._step)
            self.feed.open(saved, max_batches=left)

    def _checkpoint_manager(self) -> CheckpointManager:
        """The manager of this run dir's checkpoints, with the callbacks' save and keep policies."""
        policies: list[SavePolicy] = [cb.save_policy for cb in self.callbacks if cb.save_policy is not None]
        one_process = self.parallel is None
        return CheckpointManager(
            self.run_dir,
            save_policy=policies[0] if len(policies) == 1 else (AnyOf(*policies) if policies else None),
            keep=[policy for cb in self.callbacks for policy in cb.keep_policies],
            writer=self._writer if self._writer is not None else False,
            writes=one_process or writes_outputs(),
            link_final=one_process,
            non_finite="beside" if one_process else "before",  # every process refuses alike
        )

    def _fire(self, hook: str, *args: Any) -> None:
        for method in self._hooks[hook]:
            method(self, *args)


def _donated(state: Any) -> bool:
    """The state's buffers were consumed by a jitted call that then failed (the state is donated to each call)."""
    return any(getattr(leaf, "is_deleted", lambda: False)() for leaf in jax.tree.leaves(state))


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def with_default_progress(callbacks: list[Callback], progress: bool | Literal["auto"]) -> list[Callback]:
    """`callbacks`, with a progress display appended when `progress` asks for one and none is there."""
    if progress not in (True, False, "auto"):
        raise ValueError(f"progress must be True, False or 'auto', got {progress!r}")
    if progress is False or any(isinstance(cb, RichProgressCallback) for cb in callbacks):
        return callbacks
    if progress == "auto" and not (sys.stdout.isatty() or in_ipython_kernel()):
        return callbacks
    return [*callbacks, RichProgressCallback()]
