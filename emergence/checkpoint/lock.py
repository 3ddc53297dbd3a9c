"""The run-dir lock: one writer per run dir, released by the kernel when the holder dies.

`flock` on `<run_dir>/run.lock`: a second writer (a second terminal, a re-run cell, a
requeued job while the old one is finishing) is refused with a one-line
`RunDirLockedError` naming the holder (its pid, host and start time, written in the
file) and what to do. The kernel drops the lock when the holder's file descriptor closes,
so a SIGKILLed or OOM-killed holder never leaves a stale lock behind; the file itself
stays (removing it would let two writers lock two different inodes).

Where the filesystem has no working `flock` (some network mounts), the lock is not taken:
a warning says so once and the run goes on. Read-only uses (`emergence ckpt`, the resolver,
resuming from a read-only input) never take it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from emergence.errors import RunDirError, RunDirLockedError
from emergence.log import get_logger

log = get_logger("emergence.checkpoint")

LOCK_NAME = "run.lock"
_HOLDER_BYTES = 4096
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_warned_without_flock: set[str] = set()


def holder_info() -> dict[str, object]:
    """What the lock file says about its holder: this process's pid, host and start time."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def describe_holder(path: Path) -> str:
    """The lock file's holder as words ('pid 123 on host h since <time>'); 'an unknown process' if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            holder = json.loads(os.read(fd, _HOLDER_BYTES).decode("utf-8"))
        finally:
            os.close(fd)
        return f"pid {int(holder['pid'])} on host {str(holder['host'])[:64]} since {str(holder['started'])[:32]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process"


class RunDirLock:
    """An exclusive `flock` on `<run_dir>/run.lock`, held from `acquire()` to `release()` (or the holder's death)."""

    def __init__(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None
        self.held = False
        """True while this process holds the lock; False before, after, and where `flock` does not work."""

    def acquire(self) -> RunDirLock:
        """Take the lock, or raise `RunDirLockedError` naming the holder; warn once and go on without `flock`."""
        if self._fd is not None:
            return self
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as err:
            raise RunDirError(
                f"cannot open the run dir's lock file {self.path} ({err.strerror or err}); it must be a plain file "
                f"(remove it if it is a link), or pass another run dir"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirLockedError(
                f"run dir {self.run_dir} is in use by {describe_holder(self.path)}; wait for that run to finish "
                f"(or stop it), or pass another run dir"
            ) from None
        except OSError as err:
            if err.errno not in _NO_FLOCK:
                os.close(fd)
                raise
            self._fd = fd
            self._warn_without_flock(err)
            return self
        self._fd, self.held = fd, True
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder_info()) + "\n").encode("utf-8"), 0)
        return self

    def release(self) -> None:
        """Drop the lock (the file stays: see the module docstring)."""
        fd, self._fd, self.held = self._fd, None, False
        if fd is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __del__(self) -> None:  # a manager dropped without close() (a notebook cell) must not hold the run dir
        self.release()

    def _warn_without_flock(self, err: OSError) -> None:
        key = str(self.run_dir.resolve())
        if key not in _warned_without_flock:
            _warned_without_flock.add(key)
            log.warning(
                "the filesystem of %s has no working flock (%s): two writers in this run dir are not kept apart; "
                "run one at a time",
                self.run_dir,
                err.strerror or err,
            )
