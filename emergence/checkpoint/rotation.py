"""Rotation by validity: the run's own checkpoint files, what is known of each, and the keep policies applied.

Rotation used to rank files by name, so a damaged `step_30` in a run at step 20 outranked
every new file and `keep_last=1` deleted each one right after writing it. Here a file
takes a slot only once it is known to verify: the files this manager wrote are known
(their checksum was just computed), the others are read and verified once (cached by
inode, size and modification time) the first time rotation needs them, on the writer
thread. A file that fails to verify is moved aside as `<name>.corrupt` (never deleted:
someone may want to look at it) and takes no slot.

Only this run's files count (`lineage.py`: the run id in each manifest): a valid file of
another run is never a candidate, so it is never deleted, and is not moved aside either.
Only names rebuilt from a file's kind and step are deleted (`store.delete_checkpoint`),
and symlinks leading out of the directory are not listed (`store.list_checkpoints`).
Knows nothing of the Trainer; `manager.py` calls it after each durable save.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emergence.checkpoint.atomic import fsync_dir
from emergence.checkpoint.discovery import UNREADABLE
from emergence.checkpoint.format import read_checkpoint, read_manifest
from emergence.checkpoint.keep_policy import Candidate, KeepPolicy
from emergence.checkpoint.lineage import run_id_of, same_run
from emergence.checkpoint.store import CheckpointRef, delete_checkpoint, list_checkpoints
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")

CORRUPT_SUFFIX = ".corrupt"


@dataclass(frozen=True)
class _Known:
    signature: tuple[int, int, int]
    valid: bool
    metrics: Mapping[str, float]
    owner: str | None = None


@dataclass
class Rotation:
    """What one rotation did: files deleted (out of every policy's keep) and damaged files moved aside."""

    deleted: list[CheckpointRef] = field(default_factory=list)
    set_aside: list[Path] = field(default_factory=list)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _metrics(manifest: Mapping) -> dict[str, float]:
    metrics = manifest.get("metrics")
    if not isinstance(metrics, Mapping):
        return {}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Inventory:
    """The checkpoint files of one directory, each known valid, known damaged or not checked yet.

    Thread-safe: the writer thread records and rotates while the loop thread asks
    `candidates(kind, verify=False)` (which reads manifests only, never whole files).
    """

    def __init__(self, directory: Path | str, run_id: str | None = None) -> None:
        self.directory = Path(directory)
        self.run_id = run_id
        """The run whose files take slots (None: every file, as before lineage)."""
        self._known: dict[str, _Known] = {}
        self._lock = threading.Lock()

    def record(self, ref: CheckpointRef, manifest: Mapping) -> None:
        """`ref`'s file is known to verify (just written, or just read and verified), with this manifest."""
        signature = _signature(ref.path)
        if signature is not None:
            with self._lock:
                self._known[ref.path.name] = _Known(signature, True, _metrics(manifest), run_id_of(manifest))

    def candidates(self, kind: str, *, verify: bool = True) -> list[Candidate]:
        """The files of `kind` that may take a slot (valid, of this run), oldest first.

        `verify=True` (rotation) reads each file not checked yet in full and moves a damaged
        one aside; `verify=False` (a cheap question from the loop) trusts an unchecked file's
        manifest and reads nothing else.
        """
        found = []
        for ref in list_checkpoints(self.directory):
            if ref.kind != kind:
                continue
            known = self._check(ref) if verify else self._peek(ref)
            if known is not None and known.valid and same_run(known.owner, self.run_id):
                found.append(Candidate(ref, known.metrics))
        return found

    def rotate(self, policies: Sequence[KeepPolicy]) -> Rotation:
        """Apply each policy to the valid files of its kind: delete what none keeps, move damaged files aside."""
        done = Rotation()
        for policy in policies:
            files = [ref for ref in list_checkpoints(self.directory) if ref.kind == policy.kind]
            candidates = self.candidates(policy.kind)
            kept = {c.ref.path for c in policy.keep(candidates)}
            for candidate in candidates:
                if candidate.ref.path not in kept:
                    delete_checkpoint(candidate.ref)
                    self._forget(candidate.ref)
                    done.deleted.append(candidate.ref)
            for ref in files:
                known = self._known.get(ref.path.name)
                if known is not None and not known.valid and ref.path.exists():
                    done.set_aside.append(self._set_aside(ref))
        return done

    def _check(self, ref: CheckpointRef) -> _Known | None:
        signature = _signature(ref.path)
        if signature is None:
            return None
        with self._lock:
            known = self._known.get(ref.path.name)
        if known is not None and known.signature == signature:
            return known
        try:
            file = read_checkpoint(ref.path)
        except UNREADABLE as err:
            if not ref.path.exists():
                return None
            log.warning("damaged checkpoint takes no rotation slot: %s", err)
            known = _Known(signature, False, {})
        else:
            known = _Known(signature, True, _metrics(file.manifest), run_id_of(file.manifest))
        with self._lock:
            self._known[ref.path.name] = known
        return known

    def _peek(self, ref: CheckpointRef) -> _Known | None:
        signature = _signature(ref.path)
        with self._lock:
            known = self._known.get(ref.path.name)
        if known is not None and known.signature == signature:
            return known
        try:
            manifest = read_manifest(ref.path)
            return _Known((-1, -1, -1), True, _metrics(manifest), run_id_of(manifest))  # not cached: not verified
        except UNREADABLE:
            return None

    def _forget(self, ref: CheckpointRef) -> None:
        with self._lock:
            self._known.pop(ref.path.name, None)

    def _set_aside(self, ref: CheckpointRef) -> Path:
        """Rename a damaged file to `<name>.corrupt` (or `.corrupt-2`, ...): out of discovery's way, not deleted."""
        target = ref.path.with_name(ref.path.name + CORRUPT_SUFFIX)
        count = 1
        while os.path.lexists(target):
            count += 1
            target = ref.path.with_name(f"{ref.path.name}{CORRUPT_SUFFIX}-{count}")
        os.replace(ref.path, target)
        fsync_dir(self.directory)
        self._forget(ref)
        log.warning("moved damaged checkpoint %s aside as %s", ref.path.name, target.name)
        return target
