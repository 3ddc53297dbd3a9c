"""checkpoint_io: save and restore a ~512 MiB TrainState against raw disk, Orbax, pickle and flax.

    python bench/checkpoint_io.py [--mib 512] [--save-mib 256] [--rounds 5] [--dir /tmp] [--quick]
                                  [--only disk|save]

Targets (exit 1 when one is missed by more than the noise of the per-round ratios):
  - disk: `write_checkpoint` of host arrays ≥ 0.9× the speed of a raw fsync'd write of
    the same bytes; `read_checkpoint` (read + verify) ≥ 0.9× a raw read, caches evicted,
    and ≥ 1.0× the speed of reading + verifying the same state in format 1 (SHA-256);
  - the whole save (`--save-mib`, inside a real `fit()`; see `_save_path.py`): a
    synchronous `Trainer.save_checkpoint` ≥ 0.85× the speed of a raw fsync'd write of the
    state's bytes, measured in the same rounds; its parts are printed below the table;
  - end to end (device → durable file → device): emergence save + restore ≤ 1.0× the
    time of Orbax's `StandardCheckpointer`;
  - stall: the time `Trainer.save_checkpoint` blocks the loop for an async save ≤ 1.2×
    the time of a plain `jax.device_get` of the same state.
Pickle, `flax.serialization`, format 1 (SHA-256) and the digests of the same bytes in
memory (the CPU the file's checksum costs on write and on read; it overlaps the disk
only when a core is free) are references only. The pickle row loads only
the file it wrote a moment before into its own private temporary directory: nothing
pickled is ever read from anywhere else.

Reads are cold: before each restore the files are evicted from the page cache with
`posix_fadvise(DONTNEED)` (they are fsync'd, so every page is clean and goes).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import pickle
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import Ratio, exit_with, interleaved, machine, print_table, verdict
from _save_path import PARTS, fsync_write, measure_save_path

from emergence import Callback, Trainer
from emergence.checkpoint import direct, flatten_to_host, read_checkpoint, unflatten_into, write_checkpoint
from emergence.checkpoint.format import HASH_THREADS
from emergence.state import TrainState

LAYERS = 10


def make_state(mib: int) -> TrainState:
    """Params of LAYERS kernels plus Adam's two moments, all random (incompressible): about `mib` MiB."""
    floats = mib * 2**20 // 4 // 3 // LAYERS
    rows = 2048
    cols = max(1, floats // rows)
    keys = jax.random.split(jax.random.key(0), LAYERS)
    params = {
        f"layer_{i}": {"kernel": jax.random.normal(keys[i], (rows, cols)), "bias": jnp.zeros(cols)}
        for i in range(LAYERS)
    }
    opt_state = optax.adam(1e-3).init(params)
    moments, treedef = jax.tree.flatten(opt_state)  # random like trained moments: zeros would compress away
    moments = [
        jnp.abs(jax.random.normal(jax.random.fold_in(keys[0], i), m.shape)) if m.ndim else m
        for i, m in enumerate(moments)
    ]
    opt_state = jax.tree.unflatten(treedef, moments)
    return jax.block_until_ready(TrainState.create(params, opt_state, jax.random.key(1)))


def plain_tree(state: TrainState) -> dict[str, Any]:
    """The state with its PRNG key as key data: what pickle, flax and Orbax are given."""
    return {
        "step": state.step,
        "params": state.params,
        "opt_state": state.opt_state,
        "rng": jax.random.key_data(state.rng),
    }


def evict(path: Path) -> None:
    """Drop `path` (a file, or every file under a directory) from the page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_all(path: Path) -> bytearray:
    data = bytearray(path.stat().st_size)
    with open(path, "rb") as handle:
        handle.readinto(data)
    return data


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


@contextlib.contextmanager
def buffered_io() -> Iterator[None]:
    """`write_checkpoint` and `read_checkpoint` without direct I/O (as before it existed), for the reference rows."""
    saved, direct.MIN_BYTES = direct.MIN_BYTES, float("inf")
    try:
        yield
    finally:
        direct.MIN_BYTES = saved


class Methods:
    """Each method saves the device state to `work` and restores it; returns (save s, restore s)."""

    def __init__(self, state: TrainState, work: Path) -> None:
        self.state, self.work = state, work
        self.host, self.typed = flatten_to_host(state)
        self.chunks = [memoryview(np.ascontiguousarray(self.host[k])).cast("B") for k in sorted(self.host)]

    def _cold(self, path: Path, restore: Callable[[], Any]) -> float:
        evict(path)
        seconds, _ = timed(restore)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return seconds

    def raw(self) -> tuple[float, float]:
        path = self.work / "raw.bin"
        save, _ = timed(lambda: fsync_write(path, self.chunks))
        return save, self._cold(path, lambda: read_all(path))

    def sha256(self) -> tuple[float, float]:
        """SHA-256 of the same bytes in memory: the CPU the checksum needs on write, and again on read."""

        def digest() -> None:
            sha = hashlib.sha256()
            for chunk in self.chunks:
                sha.update(chunk)

        seconds, _ = timed(digest)
        return seconds, seconds

    def blake3(self) -> tuple[float, float]:
        """BLAKE3 of the same bytes in memory, as format 2 hashes (HASH_THREADS threads): its CPU on write and read."""
        import blake3

        def digest() -> None:
            hasher = blake3.blake3(max_threads=HASH_THREADS)
            for chunk in self.chunks:
                hasher.update(chunk)

        seconds, _ = timed(digest)
        return seconds, seconds

    def format_1(self) -> tuple[float, float]:
        """The old code path: format 1 (SHA-256), buffered write and buffered verified read."""
        path = self.work / "v1.safetensors"
        with buffered_io():
            save, _ = timed(lambda: write_checkpoint(path, self.host, {"typed_keys": self.typed}, format_version=1))
            return save, self._cold(path, lambda: read_checkpoint(path))

    def format_2_buffered(self) -> tuple[float, float]:
        """Format 2 (BLAKE3) written and read buffered, without direct I/O: the checksum's share of the gain alone."""
        path = self.work / "v2-buffered.safetensors"
        with buffered_io():
            save, _ = timed(lambda: write_checkpoint(path, self.host, {"typed_keys": self.typed}))
            return save, self._cold(path, lambda: read_checkpoint(path))

    def emergence_disk(self) -> tuple[float, float]:
        path = self.work / "disk.safetensors"
        save, _ = timed(lambda: write_checkpoint(path, self.host, {"typed_keys": self.typed}))
        return save, self._cold(path, lambda: read_checkpoint(path))

    def emergence(self) -> tuple[float, float]:
        path = self.work / "e2e.safetensors"
        save, _ = timed(lambda: write_checkpoint(path, *self._snapshot()))

        def restore() -> Any:
            file = read_checkpoint(path)
            return jax.block_until_ready(unflatten_into(self.state, file.arrays, file.manifest["typed_keys"]))

        return save, self._cold(path, restore)

    def _snapshot(self) -> tuple[dict, dict]:
        arrays, typed = flatten_to_host(self.state)
        return arrays, {"typed_keys": typed}

    def orbax(self) -> tuple[float, float]:
        import orbax.checkpoint as ocp

        path = self.work / "orbax"
        tree = plain_tree(self.state)
        with ocp.StandardCheckpointer() as checkpointer:

            def save() -> None:
                checkpointer.save(path, tree)
                checkpointer.wait_until_finished()

            seconds, _ = timed(save)
            target = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
            return seconds, self._cold(path, lambda: jax.block_until_ready(checkpointer.restore(path, target)))

    def pickle(self) -> tuple[float, float]:
        path = self.work / "own.pickle"
        save, _ = timed(lambda: fsync_write(path, [pickle.dumps(jax.device_get(plain_tree(self.state)), protocol=5)]))

        def restore() -> Any:  # loads only the file written just above, in this run's private directory
            with open(path, "rb") as handle:
                return jax.block_until_ready(jax.device_put(pickle.load(handle)))

        return save, self._cold(path, restore)

    def flax(self) -> tuple[float, float]:
        from flax import serialization

        path = self.work / "flax.msgpack"
        tree = plain_tree(self.state)
        save, _ = timed(lambda: fsync_write(path, [serialization.to_bytes(jax.device_get(tree))]))
        restore = lambda: jax.block_until_ready(jax.device_put(serialization.from_bytes(tree, bytes(read_all(path)))))  # noqa: E731
        return save, self._cold(path, restore)


class StallProbe(Callback):
    """Alternates, at quiet call boundaries, an async save and a plain `jax.device_get`, timing each.

    Before each measurement the state is ready (so neither waits for the step); after a
    save it waits for `on_save_checkpoint` (durable) before measuring again, and deletes
    the file.
    """

    def __init__(self, rounds: int) -> None:
        self.rounds, self.save, self.get, self.writing, self._held = rounds, [], [], False, None

    def on_train_call_end(self, trainer: Trainer, metrics: Any) -> None:
        self._held = None
        if self.writing:
            return
        jax.block_until_ready(trainer.state)
        if len(self.get) <= len(self.save):
            seconds, self._held = timed(lambda: jax.device_get(trainer.state))
            self.get.append(seconds)
        elif len(self.save) < self.rounds:
            seconds, _ = timed(lambda: trainer.save_checkpoint("periodic"))
            self.save.append(seconds)
            self.writing = True
        else:
            trainer.request_stop("measured")

    def on_save_checkpoint(self, trainer: Trainer, ref: Any) -> None:
        self.writing = False
        ref.path.unlink()


class BigTask:
    """A task whose state is `make_state(mib)` and whose step is an Adam-like update of all of it."""

    name = "checkpoint_io"

    def __init__(self, mib: int) -> None:
        self.mib = mib

    def config(self) -> dict[str, int]:
        return {"mib": self.mib}

    def init_state(self, rng: jax.Array) -> TrainState:
        return make_state(self.mib)

    def train_step(self, state: TrainState) -> tuple[TrainState, dict]:
        mu, nu = state.opt_state[0].mu, state.opt_state[0].nu
        params = jax.tree.map(lambda p, m, v: p - 1e-3 * m / (jnp.sqrt(v) + 1e-8), state.params, mu, nu)
        opt = (state.opt_state[0]._replace(mu=jax.tree.map(lambda m: 0.9 * m, mu)), *state.opt_state[1:])
        return state.replace(step=state.step + 1, params=params, opt_state=opt), {"loss": state.step * 0.0}


def measure_stall(mib: int, rounds: int, work: Path) -> StallProbe:
    probe = StallProbe(rounds)
    Trainer(BigTask(mib), [probe], max_steps=10_000, run_dir=work / "stall", resume=None).fit()
    return probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--save-mib", type=int, default=256, help="state size for the whole-save table")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go (the disk under test)")
    parser.add_argument("--only", choices=("disk", "save"), help="only the disk table, or only the whole-save table")
    parser.add_argument("--quick", action="store_true", help="128 MiB (whole save: 64 MiB), 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.mib, args.save_mib, args.rounds = 128, 64, 3
    free = shutil.disk_usage(args.dir).free
    if free < 4 * args.mib * 2**20:
        raise SystemExit(f"only {free / 2**30:.1f} GiB free in {args.dir}; need 4x {args.mib} MiB; pass --dir")
    verdicts = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="emergence-bench-") as work:
        if args.only != "save":
            verdicts += report(args, Path(work))
        if args.only != "disk":
            verdicts += report_save_path(args, Path(work))
    exit_with(verdicts)


def _seconds(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f}"


def report(args: argparse.Namespace, work: Path) -> list[str]:
    state = make_state(args.mib)
    size = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
    methods = Methods(state, work)
    cases = {
        name: getattr(methods, name)
        for name in (
            "raw",
            "sha256",
            "blake3",
            "format_1",
            "format_2_buffered",
            "emergence_disk",
            "emergence",
            "orbax",
            "pickle",
            "flax",
        )
    }
    times = interleaved(cases, args.rounds)
    del methods
    save = {name: [t[0] for t in runs] for name, runs in times.items()}
    load = {name: [t[1] for t in runs] for name, runs in times.items()}
    total = {name: [s + r for s, r in zip(save[name], load[name])] for name in times}
    probe = measure_stall(args.mib, args.rounds, work)

    rows, verdicts = [], []

    def row(what: str, seconds: list[float], ratio: Ratio | None, target: str, ok: str) -> None:
        rows.append([what, _seconds(seconds), str(ratio) if ratio else "-", target, ok])
        verdicts.append(ok)

    disk_w, disk_r = Ratio.of(save["raw"], save["emergence_disk"]), Ratio.of(load["raw"], load["emergence_disk"])
    old_w, old_r = Ratio.of(save["raw"], save["format_1"]), Ratio.of(load["raw"], load["format_1"])
    versus_v1 = Ratio.of(load["format_1"], load["emergence_disk"])
    row("raw fsync'd write (baseline)", save["raw"], None, "-", "-")
    row(
        "emergence write_checkpoint (host arrays, format 2, direct I/O)",
        save["emergence_disk"],
        disk_w,
        "≥ 0.9× raw speed",
        verdict(disk_w, 0.9),
    )
    v2_buffered = Ratio.of(save["raw"], save["format_2_buffered"])
    row("format 1 (SHA-256), buffered: the old writer (reference)", save["format_1"], old_w, "-", "-")
    row("format 2 (BLAKE3), buffered, no direct I/O (reference)", save["format_2_buffered"], v2_buffered, "-", "-")
    row("sha256 of the same bytes in memory (format 1's checksum CPU)", save["sha256"], None, "-", "-")
    row(f"blake3 of the same bytes in memory ({HASH_THREADS} thread(s), format 2)", save["blake3"], None, "-", "-")
    row("raw read, cold (baseline)", load["raw"], None, "-", "-")
    row(
        "emergence read_checkpoint + verify, cold (format 2, direct I/O)",
        load["emergence_disk"],
        disk_r,
        "≥ 0.9× raw speed",
        verdict(disk_r, 0.9),
    )
    row("format 1 read + verify, cold, buffered: the old reader (reference)", load["format_1"], old_r, "-", "-")
    row(
        "format 2 read + verify, cold, buffered (reference)",
        load["format_2_buffered"],
        Ratio.of(load["raw"], load["format_2_buffered"]),
        "-",
        "-",
    )
    row(
        "format 2 read + verify vs the old reader (speed)",
        load["emergence_disk"],
        versus_v1,
        "≥ 1.0× old reader",
        verdict(versus_v1, 1.0),
    )
    versus = {name: Ratio.of(total[name], total["orbax"]) for name in ("emergence", "pickle", "flax")}
    row("Orbax StandardCheckpointer save+restore (baseline)", total["orbax"], None, "-", "-")
    row(
        "emergence save+restore, device to device",
        total["emergence"],
        versus["emergence"],
        "≤ 1.0× Orbax time",
        verdict(versus["emergence"], 1.0, higher_is_better=False),
    )
    row("pickle save+restore (reference)", total["pickle"], versus["pickle"], "-", "-")
    row("flax.serialization save+restore (reference)", total["flax"], versus["flax"], "-", "-")
    stall = Ratio.of(probe.save, probe.get)
    row("jax.device_get of the state (baseline)", probe.get, None, "-", "-")
    row(
        "stall of an async Trainer.save_checkpoint",
        probe.save,
        stall,
        "≤ 1.2× device_get time",
        verdict(stall, 1.2, higher_is_better=False),
    )
    detail = ", ".join(
        f"{name} {_seconds(save[name])} s + {_seconds(load[name])} s"
        for name in times
        if name not in ("sha256", "blake3")
    )
    print_table(
        f"checkpoint_io: {size / 2**20:.0f} MiB TrainState, {args.rounds} interleaved rounds, medians; {machine()}",
        ["what", "seconds", "ratio (median ± MAD)", "target", "verdict"],
        rows,
        notes=[
            f"save + restore: {detail}",
            f"write speed raw {size / statistics.median(save['raw']) / 1e6:.0f} MB/s; cold read speed raw "
            f"{size / statistics.median(load['raw']) / 1e6:.0f} MB/s (pages evicted with posix_fadvise)",
            "ratios: disk rows are raw time / emergence time (speed, higher is better); Orbax and stall rows are "
            "time / baseline time (lower is better); a row misses when worse than its target by more than "
            "max(noise, 0.01)",
        ],
    )
    return verdicts


def report_save_path(args: argparse.Namespace, work: Path) -> list[str]:
    """The whole save inside `fit()` (see `_save_path.py`) against a raw fsync'd write of the state's bytes."""
    probe = measure_save_path(BigTask(args.save_mib), args.rounds, work)
    times, raw = probe.times, [t for pair in probe.raw.values() for t in pair]
    size = args.save_mib * 2**20
    rows, verdicts = [], []
    speed = {case: Ratio.of(probe.raw[case], times[case]) for case in ("writer", "sync save", "async save")}
    targets = {"writer": 0.9, "sync save": 0.85}
    labels = {
        "writer": "write_checkpoint alone (host arrays)",
        "sync save": "Trainer.save_checkpoint, synchronous (snapshot → durable file + latest.json)",
        "async save": "Trainer.save_checkpoint, async: snapshot → durable (loop held)",
    }
    rows.append(["raw fsync'd write (baseline, one next to each case)", _seconds(raw), "-", "-", "-"])
    for case, label in labels.items():
        target = targets.get(case)
        ok = verdict(speed[case], target)
        rows.append([label, _seconds(times[case]), str(speed[case]), f"≥ {target}× raw speed" if target else "-", ok])
        verdicts.append(ok)
    for case, label in (
        ("async stall", "async save: time the loop is blocked"),
        ("rotation", "rotation: deleting one old checkpoint (after durable)"),
        ("fresh copy", "numpy copy of the state into fresh buffers (reference)"),
        ("reused copy", "numpy copy into buffers kept from the last save (reference)"),
    ):
        rows.append([label, _seconds(times[case]), "-", "-", "-"])
    cpu = ", ".join(f"{case} {statistics.median(probe.cpu[case]):.3f}" for case in probe.cpu)
    parts = probe.breakdown.seconds
    order = [*PARTS.values(), "fsyncs (file, dir, latest.json)", "waiting for the hash after the last write"]
    breakdown = "; ".join(f"{label} {1000 * statistics.median(parts[label]):.1f} ms" for label in order if parts[label])
    print_table(
        f"checkpoint_io, the whole save: {args.save_mib} MiB TrainState inside fit(), {args.rounds} rounds, "
        f"cases rotated per round, each paired with a raw write, medians; {machine()}",
        ["what", "seconds", "speed vs raw (median ± MAD)", "target", "verdict"],
        rows,
        notes=[
            f"CPU seconds (all threads of the process, medians): {cpu}; where no core is idle the wall-clock "
            f"ratio tends to raw's CPU / the case's CPU",
            f"synchronous save, medians of its parts (overlapping: the file includes its own fsyncs): {breakdown}",
            f"raw write {size / statistics.median(raw) / 1e6:.0f} MB/s; fresh-buffer copy "
            f"{size / statistics.median(times['fresh copy']) / 1e9:.2f} GB/s vs reused "
            f"{size / statistics.median(times['reused copy']) / 1e9:.2f} GB/s (first-touch page faults)",
        ],
    )
    return verdicts


if __name__ == "__main__":
    main()
