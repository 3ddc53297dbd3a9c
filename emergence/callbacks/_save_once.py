"""Save the last completed state once: the step every emergency and end-of-budget save shares.

The signal, atexit, exception and time-budget callbacks all end the same way: write
the state after the last completed train call, unless nothing was trained since the
run started (or resumed), a final or emergency checkpoint of this step exists already,
or the state is gone. Each case is said in one log line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax

from emergence.log import get_logger

if TYPE_CHECKING:
    from emergence.checkpoint import CheckpointRef
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")

END_KINDS = ("final", "emergency")


def saved_at_current_step(trainer: "Trainer") -> bool:
    """A final or emergency checkpoint of the trainer's current step exists."""
    last = trainer.last_checkpoint
    return last is not None and last.step == trainer.step and last.kind in END_KINDS


def state_was_donated(trainer: "Trainer") -> bool:
    """The state's buffers were consumed by a jitted call that then failed.

    The Trainer donates the state to each call; when the call fails at run time the
    inputs stay deleted, so there is nothing left in memory to save.
    """
    return any(getattr(leaf, "is_deleted", lambda: False)() for leaf in jax.tree.leaves(trainer.state))


def save_last_state(trainer: "Trainer", kind: str, reason: str) -> "CheckpointRef | None":
    """Write a `kind` checkpoint of the last completed state, once; None when there was no need or no way."""
    if trainer.state is None or trainer.step == trainer.fit_start_step:
        log.info("%s: nothing to save (no train call completed since step %d)", reason, trainer.fit_start_step)
        return None
    if saved_at_current_step(trainer):
        return None
    if state_was_donated(trainer):
        log.warning(
            "%s: cannot save step %d: the failed jitted call had consumed the (donated) state; "
            "resume from the last checkpoint on disk",
            reason,
            trainer.step,
        )
        return None
    log.info("%s: saving a%s %s checkpoint of step %d", reason, "n" if kind[0] in "aeiou" else "", kind, trainer.step)
    return trainer.save_checkpoint(kind, reason=reason)
