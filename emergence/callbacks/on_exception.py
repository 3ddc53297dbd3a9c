"""OnExceptionCheckpointCallback: an exception ends the run, the last completed step is saved first.

Like Lightning's `OnExceptionCheckpoint`: when a train step, an evaluation or a callback
raises (KeyboardInterrupt and SystemExit included), `on_exception` writes
`emergency_step_<N>` with reason `exception:<Type>` before the Trainer re-raises.

The state is donated to each jitted call. An exception raised in Python (a callback,
tracing, a shape error) leaves it intact; an error inside the compiled computation at
run time (a failing host callback, out of memory) may have consumed it, and then there is
nothing in memory to save: the callback says so in one log line and the newest
checkpoint on disk is what resumes. A failing save never hides the original exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emergence.callbacks._save_once import save_last_state
from emergence.callbacks.base import Callback
from emergence.log import get_logger

if TYPE_CHECKING:
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")


class OnExceptionCheckpointCallback(Callback):
    """Saves an emergency checkpoint of the last completed step when `fit()` raises."""

    def on_exception(self, trainer: "Trainer", exception: BaseException) -> None:
        reason = f"exception:{type(exception).__name__}"
        try:
            save_last_state(trainer, "emergency", reason)
        except Exception as err:  # the original exception is re-raised by the Trainer; do not replace it
            log.error("%s: the emergency checkpoint failed too: %s", reason, err)
