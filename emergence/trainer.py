"""The Trainer: runs jitted train steps, fires hooks, honours stop requests, resumes.

The loop stays plain: one jitted call (of `steps_per_call` fused steps) per iteration,
then the hooks some callback overrides. Everything that keeps a run alive lives in
callbacks; the one way anything writes a checkpoint is `Trainer.save_checkpoint`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import jax

from emergence.callbacks.base import Callback, Metrics, hook_table
from emergence.calls import CallTracker
from emergence.checkpoint import (
    CheckpointFile,
    CheckpointRef,
    checkpoint_name,
    flatten_to_host,
    load_newest_valid,
    read_checkpoint,
    read_manifest,
    resolve_resume,
)
from emergence.checkpoint.async_writer import AsyncCheckpointWriter
from emergence.checkpoint.atomic import remove_stale_temp_files
from emergence.checkpoint.durable import write_durably
from emergence.checkpoint.finite import NonFiniteStateError, non_finite_leaves, refusal
from emergence.checkpoint.manifest import build_manifest, check_config
from emergence.checkpoint.restore import host_metrics, restore_state
from emergence.checkpoint.tree import check_storable, fold_rng
from emergence.errors import CheckpointNotFoundError, CheckpointWriteError, EmergenceError, RunDirError
from emergence.log import get_logger
from emergence.parallel.mesh import DataParallel, Devices
from emergence.parallel.process_zero import writes_outputs
from emergence.parallel.stops import Stops
from emergence.platforms.detect import platform_name
from emergence.platforms.process import jax_devices
from emergence.schedule import Every
from emergence.state import TrainState
from emergence.task import Task, task_config, task_name

log = get_logger("emergence.trainer")

Resume = Literal["auto"] | str | os.PathLike | None

ASYNC_KINDS = ("periodic", "best")


def _jit_donating(fn: Callable) -> Callable:
    return jax.jit(fn, donate_argnums=0)


def _fused_call(train_step: Callable, steps: int, jit_step: Callable[[Callable], Callable] = _jit_donating) -> Callable:
    """One jitted call running `steps` train steps; metrics averaged over them on device."""
    if steps == 1:
        return jit_step(train_step)

    def many(state: TrainState) -> tuple[TrainState, Metrics]:
        state, metrics = jax.lax.scan(lambda s, _: train_step(s), state, None, length=steps)
        return state, jax.tree.map(lambda m: m.mean(axis=0), metrics)

    return jit_step(many)


class Trainer:
    """Runs a `Task` for `max_steps` train steps with callbacks.

    Both of Lightning's shapes work: `Trainer(callbacks=[...], max_steps=N).fit(task)` and
    `Trainer(task, [...], max_steps=N).fit()`; the task goes in exactly one of the two places.

    Args:
        task: the `Task` to train (or pass it to `fit`).
        callbacks: `Callback`s, fired in this order.
        max_steps: train steps to reach (counted across resumes); None trains until a callback
            stops the run (a time budget, a signal, early stopping: callbacks with `can_stop`),
            with a warning at `fit()` start when none can.
        steps_per_call: steps fused into one jitted `lax.scan` call; hooks fire per call.
        run_dir: where checkpoints and artifacts go (default `runs/<task name>`, once the task is known).
        resume: `"auto"` (newest valid checkpoint in the run dir, else start fresh),
            a checkpoint file or directory (which is only read), or None (start fresh).
        seed: seeds `init_state` when not resuming.
        eval_every_n_steps: run `eval_step` and fire `on_validation_end` this often.
        force_resume: resume even if a structural config key changed.
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

    `last_save_seconds` is how long the last durable save took from snapshot to durable
    file (what the same save costs written synchronously), set before its
    `on_save_checkpoint` fires: the figure a time budget needs for the final save.

    `stops` is where callbacks propose a stop and read the agreed one (`Stops`): at once on
    one process; under `jax.distributed` (`jax.process_count() > 1`, checked once as `fit()`
    starts) agreed every few calls before the call's hooks, so every process stops (and
    saves) at the same step; emergency and final saves end with a barrier once process 0's
    file is durable. `calls` tracks the train calls in flight (`CallTracker`) for the
    callbacks that need call completion or timing; it is fed only when one `watch()`es it.

    Fields callbacks publish for others (the Trainer owns them, resets them at each
    `fit()` and never reads them): `logged_metrics` and `logged_step` (the values a metrics
    logger last wrote, and their step), `time_left` (seconds before a time budget's
    deadline, as of the last call boundary), `rollbacks` (a divergence guard's rollbacks,
    this session's and earlier ones). None/empty until someone writes them.
    """

    def __init__(
        self,
        task: Task | None = None,
        callbacks: Sequence[Callback] = (),
        *,
        max_steps: int | None = None,
        steps_per_call: int = 1,
        run_dir: str | os.PathLike | None = None,
        resume: Resume = "auto",
        seed: int = 0,
        eval_every_n_steps: int | None = None,
        force_resume: bool = False,
        async_checkpoint: bool | AsyncCheckpointWriter = True,
        devices: Devices | None = None,
    ) -> None:
        if isinstance(task, (list, tuple)):
            raise TypeError("Trainer's first argument is the task; pass the callback list as callbacks=[...]")
        if max_steps is not None:
            _check_positive(max_steps=max_steps)
        _check_positive(steps_per_call=steps_per_call)
        if eval_every_n_steps is not None:
            _check_positive(eval_every_n_steps=eval_every_n_steps)
        self.task: Task | None = None
        self.callbacks = list(callbacks)
        self.max_steps = max_steps
        self.steps_per_call = steps_per_call
        self._run_dir_given = run_dir is not None
        self.run_dir: Path | None = Path(run_dir) if run_dir is not None else None
        self.resume = resume
        self.seed = seed
        self.eval_every_n_steps = eval_every_n_steps
        self.force_resume = force_resume
        self._writer = _writer(async_checkpoint)
        self.parallel = None if devices is None else DataParallel(devices)
        self._hooks = hook_table(self.callbacks)
        self._calls: dict[int, Callable] = {}
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
        self._stop_reason: str | None = None
        self.last_metrics: Metrics = {}
        self.last_eval_metrics: Metrics = {}
        self.last_checkpoint: CheckpointRef | None = None
        self.last_save_seconds: float | None = None
        self.resumed_from: CheckpointRef | None = None
        self.fitting = False
        self._saves_async = False
        self.stops = Stops(on_agreed=self.request_stop)
        self.calls = CallTracker()
        self.logged_metrics: dict[str, float] = {}
        self.logged_step: int | None = None
        self.time_left: float | None = None
        self.rollbacks: list[dict[str, int]] = []

    def _bind(self, task: Task) -> None:
        """Make `task` the one this trainer trains (checked as the constructor or `fit` receives it)."""
        if self.eval_every_n_steps is not None and not callable(getattr(task, "eval_step", None)):
            raise ValueError("eval_every_n_steps is set but the task has no eval_step; add one or drop it")
        if task is not self.task:
            self._calls, self._eval_call = {}, None
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
    def stop_reason(self) -> str | None:
        """Why training stopped (or was asked to stop), once it has."""
        return self._stop_reason

    @property
    def checkpoint_dir(self) -> Path:
        """Where this run writes its checkpoints."""
        if self.run_dir is None:
            raise ValueError("the run dir is not known before the task: pass run_dir= to Trainer, or a task first")
        return self.run_dir / "checkpoints"

    def request_stop(self, reason: str) -> None:
        """Stop at the next call boundary; the first reason given wins."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def fit(self, task: Task | None = None) -> TrainState:
        """Train `task` (or the one given to the constructor) until `max_steps` or a stop; return the final state."""
        self._bind(self._task_for_fit(task))
        self._reset_run_state()
        if jax.process_count() > 1:
            self.stops = Stops(jax.process_count(), on_agreed=self.request_stop)
        self._warn_if_unstoppable()
        self._prepare_run_dir()
        self.fitting = True
        try:
            self._fire("setup")
            self._state = self._initial_state()
            self.fit_start_step = self._step
            if self._evaluation is not None:
                self._evaluation.done(self._step)
            self._saves_async = self._writer is not None
            self._fire("on_fit_start")
            self._train_loop()
            self._saves_async = False
            self._raise_pending_save_failure()
        except BaseException as exc:
            self._settle_pending_save_quietly()
            self.request_stop(f"exception:{type(exc).__name__}")
            self._fire("on_exception", exc)
            self._fire("on_fit_end", self._stop_reason)
            raise
        else:
            self._fire("on_fit_end", self._stop_reason)
        finally:
            self.fitting = False
            if self._writer is not None:
                self._settle_pending_save_quietly()
                self._writer.close()
            self._fire("teardown")
        return self._state

    def _warn_if_unstoppable(self) -> None:
        """With `max_steps=None`, say so when no callback can end the run (none has `can_stop`)."""
        if self.max_steps is None and not any(cb.can_stop for cb in self.callbacks):
            log.warning(
                "max_steps=None and no callback can stop the run (none has can_stop, as TimeBudgetCallback "
                "and SignalCheckpointCallback do): it trains until killed; set max_steps or add one"
            )

    def _train_loop(self) -> None:
        end = self.max_steps
        while self._stop_reason is None and (end is None or self._step < end):
            steps = self.steps_per_call if end is None else min(self.steps_per_call, end - self._step)
            self._state, metrics = self._call(steps)(self._state)
            self._step += steps
            self.last_metrics = metrics
            if self.calls.watched:
                self.calls.dispatched(self._step, steps, metrics)
            if self._saves_async and self._writer.ready:
                self._raise_pending_save_failure()
            self.stops.call_ended(last=end is not None and self._step >= end)
            for hook in self._hooks["on_train_call_end"]:
                hook(self, metrics)
            if self._evaluation is not None and self._evaluation.due_by_steps(self._step):
                self.evaluate()
                self._evaluation.done(self._step)
        self.request_stop("max_steps")

    def _call(self, steps: int) -> Callable:
        if steps not in self._calls:
            jit_step = _jit_donating if self.parallel is None else self.parallel.jit_step
            self._calls[steps] = _fused_call(self.task.train_step, steps, jit_step)
        return self._calls[steps]

    def evaluate(self) -> Metrics:
        """Run the task's `eval_step` on the current state and fire `on_validation_end`."""
        if self._eval_call is None:
            self._eval_call = jax.jit(self.task.eval_step)
        self.last_eval_metrics = self._eval_call(self._state)
        self._fire("on_validation_end", self.last_eval_metrics)
        return self.last_eval_metrics

    def save_checkpoint(
        self,
        kind: str,
        *,
        reason: str | None = None,
        metrics: dict[str, float] | None = None,
        then: Callable[[CheckpointRef], None] | None = None,
    ) -> CheckpointRef:
        """Write a checkpoint of the current state; the one way anything saves.

        First fires `on_before_save_checkpoint` (callbacks take in what is due at this
        step, so what `state_dict()` returns does not depend on the callback order), then
        waits for a write still in flight from an earlier save and fires its
        `on_save_checkpoint`. Then gathers the state (a device→host copy), every
        callback's `state_dict()`, the config and the latest metrics. A `periodic` or
        `best` save from inside the training loop, with async checkpointing, hands the
        write to the background thread and returns the ref of the file being written (no
        checksum yet); every other save writes atomically, updates `latest.json` and fires
        `on_save_checkpoint` before returning. `then(ref)` runs once the file is durable
        and `latest.json` points at it, before `on_save_checkpoint`, on the same thread as
        the write: rotation goes there, so deleting old files (0.2 s for 512 MiB on ext4)
        never blocks the loop either. If the earlier write failed, its
        `CheckpointWriteError` is raised: before an async save, and after an emergency or
        final save is durable (those always get their chance).
        """
        self._fire("on_before_save_checkpoint", kind)
        background = self._saves_async and kind in ASYNC_KINDS
        failed = self._collect_pending_save()
        if failed is not None and background:
            raise failed
        started = time.perf_counter()
        path = self.checkpoint_dir / checkpoint_name(kind, self._step)
        content = {
            "callbacks": {cb.state_key: cb.state_dict() for cb in self.callbacks},
            "metrics": {**host_metrics(self.last_metrics), **host_metrics(self.last_eval_metrics), **(metrics or {})},
        }
        same_as = self._same_step_file(kind, content)
        state = self._state if self.parallel is None else self.parallel.gathered(self._state)
        arrays, typed_keys = ({}, {}) if same_as is not None else flatten_to_host(state)
        scan_here = self.parallel is not None  # every process refuses alike; one process: beside the write
        if scan_here and (bad := non_finite_leaves(arrays)):
            raise NonFiniteStateError(refusal(kind, self._step, bad))
        manifest = build_manifest(
            step=self._step,
            kind=kind,
            reason=reason,
            config=task_config(self.task),
            typed_keys=typed_keys,
            platform=self._where(),
            **content,
        )
        ref = CheckpointRef(path, kind, self._step)
        if self.parallel is not None and not writes_outputs():
            self.last_checkpoint = ref  # under jax.distributed every process gathered the state; process 0 writes
            if not background:
                self.parallel.saved_durably(ref)
            return ref
        if background:
            self._writer.submit(lambda: write_durably(ref, arrays, manifest, started, then, check_finite=not scan_here))
            return ref
        try:
            written = write_durably(ref, arrays, manifest, started, then, same_as, check_finite=not scan_here)
        finally:
            if self.parallel is not None:
                self.parallel.saved_durably(ref)
        ref = self._saved(written)
        if failed is not None:
            raise failed
        return ref

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
        if ref is None:
            self._raise_pending_save_failure()
            ref = self.last_checkpoint or self.resumed_from
            if ref is None:
                raise CheckpointNotFoundError("no checkpoint to restore yet; save one first (CheckpointCallback)")
        file = read_checkpoint(ref.path if isinstance(ref, CheckpointRef) else ref)
        state = restore_state(self._state, file)
        self._state = state if fold_in is None else fold_rng(state, fold_in)
        return CheckpointRef(file.path, file.manifest["kind"], int(file.manifest["step"]), file.checksum)

    def _same_step_file(self, kind: str, content: dict[str, Any]) -> CheckpointRef | None:
        """The durable periodic/best file of this step a `final` save can reuse (hard link), on one process only.

        Only when it holds what the final would: the same callback state and metrics, as its
        manifest on disk records them (then resuming from either is the same run). Its
        manifest keeps its own kind and reason; `latest.json` names the final and its reason.
        """
        last = self.last_checkpoint
        if kind != "final" or self.parallel is not None or last is None or last.checksum is None:
            return None
        if last.step != self._step or last.kind not in ("periodic", "best"):
            return None
        try:
            saved = read_manifest(last.path)
        except (EmergenceError, OSError):
            return None
        as_written = json.loads(json.dumps(content))  # tuples become lists, as in the file
        return last if all(saved.get(key) == value for key, value in as_written.items()) else None

    def _where(self) -> dict[str, Any]:
        """What the manifest records of where the run is: platform name, JAX backend, device kinds and count."""
        if self._platform is None:
            self._platform = {"name": platform_name(), **jax_devices()}
        return self._platform

    def _saved(self, written: tuple[CheckpointRef, float]) -> CheckpointRef:
        """A checkpoint is durable: record it and fire `on_save_checkpoint`."""
        self.last_checkpoint, self.last_save_seconds = written
        self._fire("on_save_checkpoint", self.last_checkpoint)
        return self.last_checkpoint

    def _collect_pending_save(self) -> CheckpointWriteError | None:
        """Wait for the background write in flight, if any, and fire its hook; return its failure."""
        if self._writer is None or not self._writer.busy:
            return None
        try:
            written = self._writer.collect()
        except CheckpointWriteError as err:
            return err
        self._saved(written)
        return None

    def _raise_pending_save_failure(self) -> None:
        failed = self._collect_pending_save()
        if failed is not None:
            raise failed

    def _settle_pending_save_quietly(self) -> None:
        """Wait for a pending write while another exception unwinds `fit()`: log its failure, never replace it."""
        self._saves_async = False
        try:
            failed = self._collect_pending_save()
        except Exception as err:  # a hook, or a bug in the write: the exception unwinding fit() wins
            failed = err
        if failed is not None:
            log.error("a background checkpoint write failed too: %s", failed)

    def _initial_state(self) -> TrainState:
        fresh = self.task.init_state(jax.random.key(self.seed))
        check_storable(fresh)  # an unstorable leaf fails here, at fit() start, not at the first save
        if self.parallel is not None:
            fresh = self.parallel.place(self.task, fresh)  # restore_state places leaves like these
        file = self._find_resume_checkpoint()
        if file is None:
            return fresh
        check_config(
            file.manifest.get("config", {}),
            task_config(self.task),
            set(getattr(self.task, "structural_keys", ())),
            self.force_resume,
        )
        state = restore_state(fresh, file)
        self._step = int(file.manifest["step"])
        saved = file.manifest.get("callbacks", {})
        for callback in self.callbacks:
            if callback.state_key in saved:
                callback.load_state_dict(saved[callback.state_key])
        self.resumed_from = CheckpointRef(file.path, file.manifest["kind"], self._step, file.checksum)
        log.info("resumed from %s (step %d)", file.path, self._step)
        self._state = state
        self._fire("on_load_checkpoint", self.resumed_from)
        return state

    def _find_resume_checkpoint(self) -> CheckpointFile | None:
        if self.resume is None:
            return None
        if self.resume != "auto":
            return resolve_resume(self.resume)
        found = load_newest_valid(self.checkpoint_dir)
        if found is None:
            log.info("no checkpoint in %s: starting fresh", self.checkpoint_dir)
        return found

    def _prepare_run_dir(self) -> None:
        """Fail fast, before any training, if the run dir cannot be written."""
        try:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.checkpoint_dir):
                pass
        except OSError as err:
            raise RunDirError(
                f"run dir {self.run_dir} is not writable ({err.strerror or err}); pass a writable run_dir"
            ) from None
        remove_stale_temp_files(self.checkpoint_dir)

    def _fire(self, hook: str, *args: Any) -> None:
        for method in self._hooks[hook]:
            method(self, *args)


def _writer(async_checkpoint: bool | AsyncCheckpointWriter) -> AsyncCheckpointWriter | None:
    if isinstance(async_checkpoint, AsyncCheckpointWriter):
        return async_checkpoint
    if not isinstance(async_checkpoint, bool):
        raise ValueError(f"async_checkpoint must be True, False or an AsyncCheckpointWriter, got {async_checkpoint!r}")
    return AsyncCheckpointWriter() if async_checkpoint else None


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
