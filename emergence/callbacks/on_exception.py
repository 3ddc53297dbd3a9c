"""OnExceptionCheckpointCallback: an exception ends the run, the last completed step is saved first.

Like Lightning's `OnExceptionCheckpoint`: when a train step, an evaluation or a callback
raises (KeyboardInterrupt and SystemExit included), the Trainer writes
`emergency_step_<N>` with reason `exception:<Type>` before it re-raises; this callback
asks for it (`saves_on_stop`) and does nothing else.

The state is donated to each jitted call. An exception raised in Python (a callback,
tracing, a shape error) leaves it intact; an error inside the compiled computation at
run time (a failing host callback, out of memory) may have consumed it, and then there is
nothing in memory to save: the Trainer says so in one log line and the newest
checkpoint on disk is what resumes. A failing save never hides the original exception.
"""

from __future__ import annotations

from emergence.callbacks.base import Callback


class OnExceptionCheckpointCallback(Callback):
    """Asks for an emergency checkpoint of the last completed step when `fit()` raises."""

    saves_on_stop = frozenset({"exception"})
