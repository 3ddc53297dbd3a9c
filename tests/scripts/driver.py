"""Drive `train_subprocess.py` from a test or a benchmark: start it, wait for its lines, signal it, collect.

Every wait has a timeout, so a child that hangs fails the test instead of stalling it.
Children share a persistent JAX compilation cache (in the temp dir, or wherever
`JAX_COMPILATION_CACHE_DIR` points), so each one starts in about a second instead of
recompiling the same toy model: behaviour is unchanged, only the compiler is skipped.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("train_subprocess.py")
REPO = Path(__file__).resolve().parents[2]
COMPILE_CACHE = {
    "JAX_COMPILATION_CACHE_DIR": str(Path(tempfile.gettempdir()) / f"emergence-test-jax-cache-{os.getuid()}"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}


@dataclass
class Finished:
    """What a child left: exit code, every stdout line, stderr."""

    returncode: int
    lines: list[str]
    stderr: str

    def steps(self) -> list[int]:
        """The steps it reported as completed, in order."""
        return [int(line.split()[1]) for line in self.lines if line.startswith("step ")]

    def saved(self) -> list[str]:
        """Checkpoint file names it reported durable, in order."""
        return [line.split()[1] for line in self.lines if line.startswith("saved ")]


class Child:
    """A running `train_subprocess.py RUN_DIR MAX_STEPS *args` (or another `script` taking the same two first)."""

    def __init__(self, run_dir: Path, max_steps: int, *args: str, script: Path = SCRIPT) -> None:
        env = {**COMPILE_CACHE, **os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(run_dir), str(max_steps), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self._queue.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self._stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line.rstrip("\n"))
        put(None)

    def wait_for(self, prefix: str, timeout: float = 60.0) -> str:
        """The next stdout line starting with `prefix`; fails if the child ends or `timeout` passes first."""
        give_up = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, give_up - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"no {prefix!r} line within {timeout} s; stderr: {self.stderr[-2000:]}") from None
            if line is None:
                raise AssertionError(f"child ended before printing {prefix!r}; stderr: {self.stderr[-3000:]}")
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def send(self, sig: int) -> float:
        """Send `sig`; return the time.monotonic() at which it was sent."""
        sent = time.monotonic()
        self.process.send_signal(sig)
        return sent

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    @property
    def stderr(self) -> str:
        return "\n".join(line for line in self._stderr if line is not None)

    def finish(self, timeout: float = 90.0) -> Finished:
        """Wait for the child to exit and drain its output."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"child still running after {timeout} s; stderr: {self.stderr[-2000:]}") from None
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        give_up = time.monotonic() + 10
        while (not self._stderr or self._stderr[-1] is not None) and time.monotonic() < give_up:
            time.sleep(0.01)
        return Finished(code, self.lines, self.stderr)


def run_child(run_dir: Path, max_steps: int, *args: str, timeout: float = 90.0) -> Finished:
    """Run a child to its end."""
    return Child(run_dir, max_steps, *args).finish(timeout)
