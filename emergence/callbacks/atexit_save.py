"""AtexitCheckpointCallback: the interpreter is exiting and the run did not finish: save it.

Covers the exits that unwind Python without a signal: `sys.exit()` (or any exception)
escaping `fit()` from user code, and the main program ending or calling `sys.exit()`
while `fit()` still runs in a background thread. In the first case the Trainer writes
the emergency checkpoint as the exception unwinds `fit()` (this callback's
`saves_on_stop` names `exception`), before the interpreter exits. In the second the exit
handler asks the Trainer to stop (reason `atexit`) and waits up to `wait_seconds` for
`fit()` to wind down: the Trainer stops at the next call boundary and writes the
emergency checkpoint of that completed step, never of a half-updated state.

Not covered, because no Python code runs: `os._exit()`, SIGKILL, a segfault, and a
signal whose default action kills the process (add `SignalCheckpointCallback` for those).
"""

from __future__ import annotations

import atexit
import time
from typing import TYPE_CHECKING

from emergence.callbacks.base import Callback
from emergence.log import get_logger
from emergence.stop import StopReason

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")


class AtexitCheckpointCallback(Callback):
    """An emergency checkpoint of the last completed step when the interpreter exits before the run finished.

    Args:
        wait_seconds: how long the exit handler waits for a `fit()` running in another
            thread to reach its next call boundary and save before giving up.

    After `fit()` returns its handler is unregistered: it does nothing at a clean exit.
    """

    saves_on_stop = frozenset({"exception", "atexit"})

    def __init__(self, wait_seconds: float = 120.0) -> None:
        if not wait_seconds >= 0:
            raise ValueError(f"wait_seconds must be >= 0, got {wait_seconds!r}")
        self.wait_seconds = wait_seconds
        self._trainer: "Trainer | None" = None

    def setup(self, trainer: "Trainer") -> None:
        self._trainer = trainer
        atexit.unregister(self._at_exit)
        atexit.register(self._at_exit)

    def teardown(self, trainer: "Trainer") -> None:
        atexit.unregister(self._at_exit)
        self._trainer = None

    def _at_exit(self) -> None:
        """The exit handler: stop a `fit()` still running in another thread, and wait for its emergency save."""
        trainer = self._trainer
        if trainer is None or not trainer.fitting:
            return
        log.warning(
            "interpreter exiting while fit() runs (step %d): stopping it at the next call boundary", trainer.step
        )
        trainer.request_stop(StopReason("atexit"), any_process=True)
        give_up = time.monotonic() + self.wait_seconds
        while trainer.fitting and time.monotonic() < give_up:
            time.sleep(0.02)
        if trainer.fitting:
            log.warning(
                "fit() did not reach a call boundary within %.0f s: no checkpoint saved at exit", self.wait_seconds
            )
