"""CheckpointManager: the one owner of a run dir's checkpoint files.

Orbax's `CheckpointManager` is the model (`checkpoint_manager.py`: `should_save`,
`save`, `restore`, `wait_until_finished`, `close`): "when to save" is a save policy
(`save_policy.py`), "what to keep" a list of keep policies (`keep_policy.py`), and this
object owns the rest: the background writer and the one save in flight, the linked-final
rule, `latest.json`, rotation by validity (`rotation.py`), resume lookup through the one
resolver (`resolve.py`) and restore. It is also the run dir's one owner: `open()` takes the
run-dir lock (`lock.py`), `find_resume` fixes the run's lineage (`lineage.py`: which files
rotation and `"auto"` count) and refuses a fresh start in a used run dir unless told to
move the old outputs aside (`fresh_start.py`).

It fires no hooks and knows nothing of the Trainer or callbacks. A save made durable
(synchronously, or on the writer thread) is reported back as a `Durable` by `poll()`,
in the order the saves were made; the Trainer turns each into `on_save_checkpoint`.
A background write's failure is raised on the caller's thread: by `poll()` once it has
finished, by `wait_until_finished()`, or by the next `save()`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from emergence.checkpoint.async_writer import AsyncCheckpointWriter, writer_from
from emergence.checkpoint.atomic import remove_stale_temp_files
from emergence.checkpoint.durable import write_durably
from emergence.checkpoint.finite import NonFiniteStateError, non_finite_leaves, refusal
from emergence.checkpoint.format import CheckpointFile, read_checkpoint
from emergence.checkpoint.fresh_start import refuse_or_move_aside
from emergence.checkpoint.keep_policy import Candidate, KeepBestN, KeepPolicy, check_keep_policies
from emergence.checkpoint.lineage import new_run_id, record_run_id, recorded_run_id, run_id_of
from emergence.checkpoint.lock import RunDirLock
from emergence.checkpoint.manifest import build_manifest
from emergence.checkpoint.pending import Durable, PendingSaves, Written
from emergence.checkpoint.resolve import CHECKPOINTS, Source, file_ref, resolve_checkpoint
from emergence.checkpoint.rotation import Inventory
from emergence.checkpoint.save_policy import Never, SaveContext, SavePolicy
from emergence.checkpoint.store import KINDS, CheckpointRef, checkpoint_name
from emergence.errors import CheckpointNotFoundError, RunDirError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")

BACKGROUND_KINDS = ("periodic", "best")
"""Kinds written on the writer thread by default; `emergency` and `final` are durable before `save` returns."""


def _content_key(manifest: Mapping[str, Any]) -> str:
    """What a final save must share with a file of its step to be that file's hard link: callback state and metrics."""
    return json.dumps({"callbacks": manifest.get("callbacks"), "metrics": manifest.get("metrics")}, sort_keys=True)


class CheckpointManager:
    """Saves, rotates, finds and restores the checkpoints of one run dir (`<run_dir>/checkpoints`).

    Args:
        run_dir: the run dir; checkpoints go to its `checkpoints/`.
        save_policy: when a periodic save is due (`should_save`); default `Never` (save only when told).
        keep: keep policies, one per rotated kind (`KeepLastN`, `KeepBestN`); kinds none governs are all kept.
            `emergency` and `final` files are never rotated.
        writer: True (default) writes `periodic` and `best` saves on one background thread; False writes
            every save before `save` returns; an `AsyncCheckpointWriter` is used as given (tests hold writes back).
        roots: read-only roots `resume="auto"` also searches (a previous Kaggle session's output).
        writes: False on a process that takes part in saves but does not write (under `jax.distributed`,
            every process but 0): `save` gathers and checks like the writer, then writes nothing.
        link_final: a `final` save at the step of the last durable periodic/best file holding the same
            callback state and metrics becomes its hard link (no arrays written twice).
        non_finite: refuse a state holding NaN or infinities `"beside"` the write (one process; off the loop
            for background saves) or `"before"` it on the calling thread (every process refuses alike).
        clock: monotonic seconds for the save policy's context (inject a fake one in tests).
    """

    def __init__(
        self,
        run_dir: Path | str,
        *,
        save_policy: SavePolicy | None = None,
        keep: Sequence[KeepPolicy] = (),
        writer: bool | AsyncCheckpointWriter = True,
        roots: Sequence[Path | str] = (),
        writes: bool = True,
        link_final: bool = True,
        non_finite: Literal["beside", "before"] = "beside",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if non_finite not in ("beside", "before"):
            raise ValueError(f"non_finite must be 'beside' or 'before', got {non_finite!r}")
        self.run_dir = Path(run_dir)
        self.directory = self.run_dir / CHECKPOINTS
        self.save_policy = save_policy if save_policy is not None else Never()
        self.keep = keep
        self.roots = tuple(Path(root) for root in roots)
        self.writes = writes
        self.link_final = link_final
        self.non_finite = non_finite
        self.clock = clock
        self.resumed_from: CheckpointRef | None = None
        self._pending = PendingSaves(writer_from(writer))
        self._inventory = Inventory(self.directory)
        self._not_written: CheckpointRef | None = None
        self._lock = RunDirLock(self.run_dir)
        self._opened = False
        self._overwrite = False

    @property
    def run_id(self) -> str | None:
        """This run's id (`lineage.py`): set by `find_resume` (carried from the file resumed, or new) or a save."""
        return self._inventory.run_id

    @run_id.setter
    def run_id(self, run_id: str) -> None:
        self._inventory.run_id = run_id
        if self._opened and self.writes and recorded_run_id(self.directory) != run_id:
            record_run_id(self.directory, run_id)

    @property
    def keep(self) -> tuple[KeepPolicy, ...]:
        """The keep policies (settable, e.g. by a callback at `setup`: checked like the constructor's)."""
        return self._keep

    @keep.setter
    def keep(self, policies: Sequence[KeepPolicy]) -> None:
        self._keep = check_keep_policies(policies, BACKGROUND_KINDS)

    # --- the run dir -------------------------------------------------------------------

    def open(self, *, overwrite: bool = False) -> CheckpointManager:
        """Make the checkpoint dir, fail fast if it is not writable, take the run-dir lock, clean stale temp files.

        `RunDirError` when the run dir cannot be written; `RunDirLockedError` (one line, naming
        the holder) when another process writes there now. Temp files are removed only under
        the lock (where `flock` does not work they are left: they may be another writer's).
        `overwrite` is the user's answer for a fresh start in a used run dir, acted on by
        `find_resume`: move the old outputs aside instead of refusing. A process that does not
        write (`writes=False`) takes no lock and cleans nothing.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.directory):
                pass
        except OSError as err:
            raise RunDirError(
                f"run dir {self.run_dir} is not writable ({err.strerror or err}); pass a writable run_dir"
            ) from None
        self._overwrite = overwrite
        if self.writes:
            if self._lock.acquire().held:
                remove_stale_temp_files(self.directory)
            self._opened = True
        return self

    def close(self) -> None:
        """Wait for the write in flight (a failure is logged, not raised), stop the writer thread, release the lock."""
        try:
            self._pending.close()
        finally:
            self._lock.release()
            self._opened = False

    def __enter__(self) -> CheckpointManager:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- when to save ------------------------------------------------------------------

    @property
    def saving(self) -> bool:
        """A background write is in flight (submitted and not finished)."""
        return self._pending.saving

    @property
    def next_step(self) -> float:
        """No periodic save is due before this step: the loop need not ask `should_save` until then."""
        return self.save_policy.next_step

    def context(self, step: int, metrics: Mapping[str, float] | None = None, now: float | None = None) -> SaveContext:
        """The facts the policies see at `step`: the clock's time (or `now`), `metrics`, a write in flight."""
        return SaveContext(step, self.clock() if now is None else now, metrics or {}, self.saving)

    def start(self, step: int, now: float | None = None) -> None:
        """Counting starts at `step` (a fresh run at 0, or the step resumed): the first save is an interval away."""
        self.save_policy.start(self.context(step, now=now))

    def should_save(self, step: int, *, metrics: Mapping[str, float] | None = None, now: float | None = None) -> bool:
        """Is a periodic save due at `step`, as the save policy decides?"""
        return self.save_policy.should_save(self.context(step, metrics, now))

    def should_save_best(self, metrics: Mapping[str, float]) -> bool:
        """Would a `best` file with these metrics be among those a `KeepBestN` keeps? (Reads manifests only.)"""
        rules = [p for p in self.keep if isinstance(p, KeepBestN) and p.kind == "best"]
        if not rules:
            raise ValueError("should_save_best needs a KeepBestN(monitor, mode, n) among the manager's keep policies")
        candidates = self._inventory.candidates("best", verify=False)
        in_flight = self._pending.in_flight
        if in_flight is not None and in_flight.ref.kind == "best":
            candidates.append(in_flight)
        for rule in rules:
            if rule.monitor not in metrics:
                raise KeyError(f"monitor {rule.monitor!r} is not among the metrics; pick one of {sorted(metrics)}")
        return any(rule.admits(float(metrics[rule.monitor]), candidates) for rule in rules)

    # --- saving ------------------------------------------------------------------------

    def save(
        self,
        step: int,
        state: Any,
        *,
        kind: str = "periodic",
        reason: str | None = None,
        config: Mapping[str, Any] | None = None,
        callbacks: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        platform: Mapping[str, Any] | None = None,
        background: bool | None = None,
    ) -> CheckpointRef:
        """Save `state` (a pytree: device or host arrays) as a `kind` checkpoint of `step`; return its ref.

        Waits for the write in flight first (one at a time, in order; its completion is
        reported by the next `poll()`). Copies the state to the host on this thread (the
        caller may donate it next), then writes it: on the writer thread for a background
        save (`background` None: `periodic` and `best` when the manager has a writer),
        returning the ref without a checksum; else atomically before returning the ref with
        its checksum. Either way the file is followed by `latest.json` and rotation. If the
        earlier background write failed, its `CheckpointWriteError` is raised: before a
        background save, and after a synchronous one is durable (an emergency or final save
        always gets its chance). A periodic save tells the save policy (`saved`).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown checkpoint kind {kind!r}; use one of {', '.join(KINDS)}")
        pending = self._pending
        background = pending.can_write_in_background and (
            kind in BACKGROUND_KINDS if background is None else background
        )
        failed = pending.collect()
        if failed is not None and background:
            raise failed
        started = time.perf_counter()
        ref = CheckpointRef(self.directory / checkpoint_name(kind, step), kind, step)
        content = {"callbacks": dict(callbacks or {}), "metrics": dict(metrics or {})}
        same_as = self._same_step_file(kind, step, content)
        arrays, typed_keys = ({}, {}) if same_as is not None else _to_host(state)
        if self.non_finite == "before" and (bad := non_finite_leaves(arrays)):
            raise NonFiniteStateError(refusal(kind, step, bad))
        if self.run_id is None:
            self.run_id = recorded_run_id(self.directory) or new_run_id()
        manifest = build_manifest(
            run_id=self.run_id,
            step=step,
            kind=kind,
            reason=reason,
            config=dict(config or {}),
            typed_keys=typed_keys,
            platform=dict(platform or {}),
            **content,
        )
        if not self.writes:
            self._not_written = ref
        elif background:
            pending.submit(
                lambda: self._write(ref, arrays, manifest, started, None), Candidate(ref, content["metrics"])
            )
        else:
            ref = pending.run(lambda: self._write(ref, arrays, manifest, started, same_as))
        if kind == "periodic":
            self.save_policy.saved(self.context(step))
        if failed is not None:
            raise failed
        return ref

    def poll(self) -> list[Durable]:
        """The saves made durable since the last call, oldest first (never blocks; raises a failed background write)."""
        return self._pending.take()

    def wait_until_finished(self) -> None:
        """Block until the write in flight, if any, is durable; raise its `CheckpointWriteError` if it failed.

        Its completion stays queued for the next `poll()`.
        """
        failed = self._pending.collect()
        if failed is not None:
            raise failed

    def settle(self) -> BaseException | None:
        """Wait for the write in flight while another exception unwinds: log its failure and return it, never raise."""
        return self._pending.settle()

    @property
    def latest(self) -> CheckpointRef | None:
        """The newest checkpoint this manager saved (durable, or handed to process 0) or resumed from."""
        if not self.writes:  # what it handed to process 0, never the resumed file the link rule remembers
            return self._not_written or self.resumed_from
        if self._pending.last_written is not None:
            return self._pending.last_written[0].ref
        return self._not_written or self.resumed_from

    def _write(
        self, ref: CheckpointRef, arrays: dict, manifest: dict, started: float, same_as: CheckpointRef | None
    ) -> Written:
        """The file (or its hard link), `latest.json`, then rotation; runs on the writer thread or inline.

        Only the saved kind's files rotate: an emergency or final save (made while a signal's
        grace period or a time budget runs out) never waits for rotation.
        """

        def rotate(written: CheckpointRef) -> None:
            self._inventory.record(written, manifest)
            self._inventory.rotate([policy for policy in self.keep if policy.kind == ref.kind])

        written, seconds = write_durably(
            ref, arrays, manifest, started, rotate, same_as, check_finite=self.non_finite == "beside"
        )
        return Durable(written, seconds), _content_key(manifest)

    def _same_step_file(self, kind: str, step: int, content: Mapping[str, Any]) -> CheckpointRef | None:
        """The durable periodic/best file of `step` a `final` save can be a hard link of.

        Only when it holds what the final would: the same callback state and metrics, as
        the manager wrote them (then resuming from either is the same run). Its manifest
        keeps its own kind and reason; `latest.json` names the final and its reason.
        """
        if kind != "final" or not self.link_final or self._pending.last_written is None:
            return None
        durable, key = self._pending.last_written
        last = durable.ref
        if last.step != step or last.kind not in BACKGROUND_KINDS or last.checksum is None:
            return None
        return last if _content_key(content) == key else None

    # --- resuming and restoring --------------------------------------------------------

    def find_resume(self, resume: Source) -> CheckpointFile | None:
        """The verified checkpoint `resume` names (`resolve_checkpoint`, "auto" meaning this run dir and the roots).

        Decides the run's lineage: `"auto"` counts only files of the run this run dir records
        (`run.json`); a resumed file's run id is carried on; a fresh start (None, or `"auto"`
        finding nothing valid of this run) draws a new one. On an opened manager a fresh start
        in a run dir holding checkpoints or metrics is a `RunDirInUseError` (resume, a new run
        dir, or overwrite), or with `open(overwrite=True)` moves them into `previous-<time>/`.
        Remembered as `resumed_from` (and `latest`); a file of this run dir is known valid to rotation.
        """
        recorded = recorded_run_id(self.directory)
        file = resolve_checkpoint(resume, run_dir=self.run_dir, roots=self.roots, run_id=recorded)
        if file is None:
            if resume is not None:
                log.info("no checkpoint of this run in %s: starting fresh", self.directory)
            if self._opened and refuse_or_move_aside(self.run_dir, self._overwrite, recorded) is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
            self.run_id = new_run_id()
            return None
        carried = run_id_of(file.manifest)
        if recorded is not None and carried is not None and carried != recorded:
            log.warning("run dir %s was run %s; continuing run %s from %s", self.run_dir, recorded, carried, file.path)
        self.run_id = carried or recorded or new_run_id()
        self.resumed_from = file_ref(file)
        if file.path.parent.resolve() == self.directory.resolve():
            self._inventory.record(self.resumed_from, file.manifest)
            # a final at the resumed periodic file's step may be its hard link (a kill during the linked final)
            self._pending.last_written = (Durable(self.resumed_from, 0.0), _content_key(file.manifest))
        log.info("resumed from %s (step %d)", file.path, self.resumed_from.step)
        return file

    def restore(
        self,
        template: Any,
        source: CheckpointFile | CheckpointRef | Path | str | None = None,
        *,
        fold_in: int | None = None,
        upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> tuple[Any, CheckpointRef]:
        """`template` (a fresh state of the right structure) filled from a checkpoint; the state and the ref read.

        `source` None: the newest checkpoint this manager saved or resumed from, after
        waiting for a write in flight. `fold_in` folds that number into every typed PRNG
        key of the state (`fold_rng`), so the steps after a rollback do not repeat. `upgrade` (a task's
        `upgrade_checkpoint`) fits an older file's arrays to the template first.
        """
        from emergence.checkpoint.restore import restore_state
        from emergence.checkpoint.tree import fold_rng

        if source is None:
            self.wait_until_finished()
            source = self.latest
            if source is None:
                raise CheckpointNotFoundError("no checkpoint to restore yet; save one first (CheckpointCallback)")
        if not isinstance(source, CheckpointFile):
            source = read_checkpoint(source.path if isinstance(source, CheckpointRef) else source)
        state = restore_state(template, source, upgrade)
        return (state if fold_in is None else fold_rng(state, fold_in)), file_ref(source)


def _to_host(state: Any) -> tuple[dict, dict]:
    """The state's leaves as host arrays (a device→host copy; JAX is imported only when a save is made)."""
    from emergence.checkpoint.tree import flatten_to_host

    return flatten_to_host(state)
