"""AtexitCheckpointCallback: the interpreter is exiting and the run did not finish: save it.

Covers the exits that unwind Python without a signal: `sys.exit()` (or any exception)
escaping `fit()` from user code, and the main program ending or calling `sys.exit()`
while `fit()` still runs in a background thread. In the second case the handler asks the
Trainer to stop (reason `atexit`) and waits up to `wait_seconds` for the current call to
finish, so the checkpoint is of a completed step, never of a half-updated state.

Not covered, because no Python code runs: `os._exit()`, SIGKILL, a segfault, and a
signal whose default action kills the process (add `SignalCheckpointCallback` for those).
"""

from __future__ import annotations

import atexit
import time
from typing import TYPE_CHECKING

from emergence.callbacks._save_once import save_last_state
from emergence.callbacks.base import Callback
from emergence.log import get_logger

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")


class AtexitCheckpointCallback(Callback):
    """At interpreter exit, an emergency checkpoint of the last completed step if the run did not finish.

    Args:
        wait_seconds: how long the exit handler waits for a `fit()` running in another
            thread to reach its next call boundary before giving up.

    Does nothing after a clean finish (its handler is unregistered in `teardown`), and
    nothing when a final or emergency checkpoint of the current step exists already.
    """

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
        if not (trainer.stop_reason or "").startswith("exception:"):
            atexit.unregister(self._at_exit)
            self._trainer = None

    def _at_exit(self) -> None:
        trainer = self._trainer
        if trainer is None:
            return
        if trainer.fitting and not self._stop_running_fit(trainer):
            return
        save_last_state(trainer, "emergency", "atexit")

    def _stop_running_fit(self, trainer: "Trainer") -> bool:
        """Ask a fit() in another thread to stop; True once it has wound down."""
        log.warning(
            "interpreter exiting while fit() runs (step %d): stopping it at the next call boundary", trainer.step
        )
        trainer.request_stop("atexit")
        give_up = time.monotonic() + self.wait_seconds
        while trainer.fitting and time.monotonic() < give_up:
            time.sleep(0.02)
        if trainer.fitting:
            log.warning(
                "fit() did not reach a call boundary within %.0f s: no checkpoint saved at exit", self.wait_seconds
            )
        return not trainer.fitting
