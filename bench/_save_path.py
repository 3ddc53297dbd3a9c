"""The Trainer's whole save path, timed inside a real `fit()` beside the writer alone and a raw fsync'd write.

`SaveProbe` is a callback that, at quiet call boundaries (the state ready, no write in
flight, the loop held), runs one case per boundary, rotating their order each round.
The disk of a shared virtual machine changes speed from second to second (a raw write
of 256 MiB took 0.2-0.9 s here), so each of the first three cases is paired with a raw
write right next to it (which one goes first alternates by round):

- `raw`: the state's bytes written to a new file and fsync'd (the baseline of each pair);
- `writer`: `write_checkpoint` of the same host arrays (the file format alone);
- `sync save`: `Trainer.save_checkpoint("emergency")` — emergency saves always take the
  synchronous path, the same code a periodic save takes with `async_checkpoint=False`:
  snapshot, metric fetch, manifest, file, `latest.json`;
- `async save`: `Trainer.save_checkpoint("periodic")` inside the loop: the stall (until it
  returns) and the seconds to a durable file (`trainer.last_save_seconds`), the loop held
  meanwhile so nothing competes with the writer;
- `rotation`: deleting one old checkpoint of this size (what `keep_last` adds after a save);
- `fresh copy` / `reused copy`: copying the state's bytes into newly allocated numpy
  buffers vs into buffers kept from the last save (the first-touch page faults a
  device→host snapshot pays on an accelerator, where `jax.device_get` allocates anew).

`Breakdown` times the parts of the synchronous save by wrapping the functions it calls.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np

import emergence.checkpoint.durable as durable_module
import emergence.checkpoint.format as checkpoint_format
import emergence.trainer as trainer_module
from emergence import Callback, Trainer
from emergence.checkpoint import CheckpointRef, delete_checkpoint, flatten_to_host, write_checkpoint
from emergence.checkpoint.async_writer import AsyncCheckpointWriter

SETTLE_SECONDS = 0.2  # a pause before each timed write: the virtual disk drains the previous burst first
CASES = ("writer", "sync save", "async save", "rotation", "fresh copy", "reused copy")
PAIRED = ("writer", "sync save", "async save")
PARTS = {
    "flatten_to_host": "snapshot (flatten_to_host)",
    "non_finite_leaves": "NaN/inf scan (non_finite_leaves)",
    "host_metrics": "metric fetches (host_metrics)",
    "build_manifest": "manifest (state_dicts, versions)",
    "write_checkpoint": "file (write_checkpoint)",
    "write_latest": "latest.json (write_latest)",
}


def fsync_write(path: Path, chunks: list) -> None:
    """The raw baseline: `chunks` written to `path` in one buffered pass, then fsync'd."""
    with open(path, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())


class Breakdown:
    """Seconds per part of a save, from wrappers around the functions `Trainer.save_checkpoint` calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self._round: dict[str, float] = defaultdict(float)

    def _timed(self, label: str, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._round[label] += time.perf_counter() - start

        return wrapper

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Wrap the save's parts (and every fsync, and the wait for the hash) for one save."""
        targets = [
            (module, name, label)
            for name, label in PARTS.items()
            for module in (trainer_module, durable_module)
            if hasattr(module, name)
        ]
        targets += [
            (os, "fsync", "fsyncs (file, dir, latest.json)"),
            (checkpoint_format._Hasher, "checksum", "waiting for the hash after the last write"),
        ]
        originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
        for owner, name, label in targets:
            setattr(owner, name, self._timed(label, getattr(owner, name)))
        self._round.clear()
        try:
            yield
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)
            for label, seconds in self._round.items():
                self.seconds[label].append(seconds)


class SaveProbe(Callback):
    """Runs the cases of `CASES`, one per quiet call boundary, `rounds` times each; see the module docstring."""

    def __init__(self, rounds: int, work: Path, writer: AsyncCheckpointWriter) -> None:
        self.rounds, self.work, self.writer = rounds, work, writer
        self.times: dict[str, list[float]] = {case: [] for case in (*CASES, "async stall")}
        self.raw: dict[str, list[float]] = {case: [] for case in PAIRED}  # the raw write paired with each
        self.cpu: dict[str, list[float]] = {case: [] for case in ("raw", *PAIRED)}  # CPU s, all threads
        self.breakdown = Breakdown()
        self._queue: list[str] = []
        self._round = 0
        self._async_pending = False
        self._staging: list[np.ndarray] | None = None
        self._doomed: list[Path] = []

    def on_save_checkpoint(self, trainer: Trainer, ref: CheckpointRef) -> None:
        if self._async_pending:
            self.times["async save"].append(trainer.last_save_seconds)
            self._async_pending = False
        self._doomed.append(ref.path)

    def on_train_call_end(self, trainer: Trainer, metrics: Any) -> None:
        self._settle()
        if not self._queue:
            if self._round == self.rounds:
                trainer.request_stop("measured")
                return
            shift = self._round % len(CASES)
            self._queue = list(CASES[shift:] + CASES[:shift])
            self._round += 1
        jax.block_until_ready(trainer.state)
        case = self._queue.pop(0)
        raw_first = self._round % 2 == 0
        if case in PAIRED and raw_first:
            self.raw[case].append(self._cpu_timed("raw", trainer))
        seconds = self._cpu_timed(case, trainer)
        if case in PAIRED and not raw_first:
            self._settle()
            self.raw[case].append(self._cpu_timed("raw", trainer))
        if case != "async save":
            self.times[case].append(seconds)

    def _settle(self) -> None:
        """Delete the files of the case just run, and commit the deletion, before the next timed write.

        This disk is mounted with `discard`: ext4 trims freed blocks when it next commits
        its journal, so the first fsync after deleting 256 MiB would pay for the trim
        (tens to hundreds of ms). `os.sync()` pays it here, untimed; the `rotation` case
        times it as part of a deletion.
        """
        for path in self._doomed:
            path.unlink(missing_ok=True)
        self._doomed = []
        os.sync()

    def _cpu_timed(self, case: str, trainer: Trainer) -> float:
        """`_run(case)`, recording the CPU seconds of the whole process (every thread) it took beside the wall time."""
        time.sleep(SETTLE_SECONDS)
        cpu = time.process_time()
        seconds = self._run(case, trainer)
        if case in self.cpu:
            self.cpu[case].append(time.process_time() - cpu)
        return seconds

    def _run(self, case: str, trainer: Trainer) -> float:
        arrays, typed = flatten_to_host(trainer.state)
        chunks = [memoryview(np.ascontiguousarray(arrays[k])).cast("B") for k in sorted(arrays)]
        path = self.work / f"{case.replace(' ', '_')}.bin"
        self._doomed.append(path)
        start = time.perf_counter()
        if case == "raw":
            fsync_write(path, chunks)
        elif case == "writer":
            write_checkpoint(path, arrays, {"typed_keys": typed})
        elif case == "sync save":
            with self.breakdown.watching():
                start = time.perf_counter()
                trainer.save_checkpoint("emergency", reason="bench")
        elif case == "async save":
            trainer.save_checkpoint("periodic", reason="bench")
            self.times["async stall"].append(time.perf_counter() - start)
            self._async_pending = True  # its seconds come with on_save_checkpoint, at the next call boundary
            while not self.writer.ready:  # hold the loop: the write alone, nothing competing with it
                time.sleep(0.001)
            return 0.0
        elif case == "rotation":
            return self._rotation(path, chunks)
        elif case == "fresh copy":
            self._staging = [np.array(a, copy=True) for a in arrays.values()]
        else:
            return self._reused_copy(arrays)
        return time.perf_counter() - start

    def _rotation(self, path: Path, chunks: list) -> float:
        """Deleting one file of this size durably, and the journal commit after it (trim, on a `discard` mount)."""
        fsync_write(path, chunks)
        os.sync()
        start = time.perf_counter()
        delete_checkpoint(CheckpointRef(path, "periodic", 0))
        os.sync()
        return time.perf_counter() - start

    def _reused_copy(self, arrays: dict[str, np.ndarray]) -> float:
        if self._staging is None or len(self._staging) != len(arrays):
            self._staging = [np.array(a, copy=True) for a in arrays.values()]
        start = time.perf_counter()
        for buffer, array in zip(self._staging, arrays.values()):
            np.copyto(buffer, array)
        return time.perf_counter() - start


def measure_save_path(task: Any, rounds: int, work: Path) -> SaveProbe:
    """Fit `task` with a `SaveProbe` until every case ran `rounds` times; the probe holds the times."""
    writer = AsyncCheckpointWriter()
    probe = SaveProbe(rounds, work, writer)
    Trainer(task, [probe], max_steps=1_000_000, run_dir=work / "save_path", resume=None, async_checkpoint=writer).fit()
    return probe
