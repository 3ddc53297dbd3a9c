"""Save through a `CheckpointManager` in its own process: the subject of the lock and fault-injection tests.

Usage: manager_writer.py RUN_DIR [--steps 3,4,5] [--final] [--keep N] [--resume auto|none]
                         [--overwrite] [--hold SECONDS] [--kill-at N] [--trace FILE]

Opens the manager (taking the run-dir lock), resumes, then saves a periodic checkpoint of
each step (the state `{"w": [step] * 4}`), and with `--final` a final at the last step
holding the same callback state and metrics (a hard link of the periodic file). Prints
`opened <resumed step or fresh>`, `durable <kind> <step>` after each save returns, `done`.
`--hold` waits that long after opening (holding the lock). `--kill-at N` SIGKILLs this
process at the Nth filesystem call of the saves (write, fsync, rename, link, unlink);
`--trace FILE` writes one line per such call instead (`<n> <call> <file>`), to enumerate them.
A one-line `EmergenceError` goes to stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np

from emergence.checkpoint import CheckpointManager, KeepLastN
from emergence.errors import EmergenceError

CALLS = ("fsync", "replace", "rename", "link", "unlink")


class Faults:
    """Counts the filesystem calls of the saves; kills the process at one of them, or traces them all."""

    def __init__(self, kill_at: int | None, trace: Path | None) -> None:
        self.kill_at, self.trace, self.count = kill_at, trace, 0

    def __call__(self, call: str, path: object) -> None:
        self.count += 1
        name = re.sub(r"\.\d+\.[0-9a-f]{16}$", "", os.path.basename(str(path)))  # temp names: pid and random
        if self.trace is not None:
            with open(self.trace, "a") as handle:
                handle.write(f"{self.count} {call} {name}\n")
        if self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self) -> None:
        """Wrap `os`'s calls (looked up at call time by pathlib and `emergence.checkpoint`) and file writes."""
        for call in CALLS:
            real = getattr(os, call)
            setattr(os, call, self._wrap(call, real))
        real_fdopen = os.fdopen

        def fdopen(fd, *args, **kwargs):
            return _CountedFile(real_fdopen(fd, *args, **kwargs), self)

        os.fdopen = fdopen

    def _wrap(self, call, real):
        def counted(*args, **kwargs):
            self(call, args[0] if call != "fsync" else _fd_name(args[0]))
            return real(*args, **kwargs)

        return counted


def _fd_name(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd{fd}"


class _CountedFile:
    """A file object whose writes are counted (and may be where the process dies)."""

    def __init__(self, handle, faults: Faults) -> None:
        self._handle, self._faults = handle, faults

    def write(self, data):
        self._faults("write", self._handle.name if isinstance(self._handle.name, str) else _fd_name(self.fileno()))
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps", default="")
    parser.add_argument("--final", action="store_true")
    parser.add_argument("--keep", type=int, default=2)
    parser.add_argument("--resume", default="auto")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--trace", type=Path, default=None)
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",") if s]
    try:
        manager = CheckpointManager(args.run_dir, keep=[KeepLastN(args.keep)], writer=False)
        manager.open(overwrite=args.overwrite)
        file = manager.find_resume(None if args.resume == "none" else args.resume)
    except EmergenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"opened {file.manifest['step'] if file is not None else 'fresh'}", flush=True)
    time.sleep(args.hold)
    if args.kill_at is not None or args.trace is not None:
        Faults(args.kill_at, args.trace).install()
    content = {}
    for step in steps:
        content = {"callbacks": {"cb": {"step": step}}, "metrics": {"loss": 1.0 / step}}
        manager.save(step, {"w": np.full(4, step, np.float32)}, **content)
        print(f"durable periodic {step}", flush=True)
    if args.final and steps:
        manager.save(steps[-1], {"w": np.full(4, steps[-1], np.float32)}, kind="final", **content)
        print(f"durable final {steps[-1]}", flush=True)
    manager.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
