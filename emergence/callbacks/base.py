"""The Callback protocol: hooks named for the moment they fire, requests, persisted state, a summary.

A callback overrides only the hooks it needs; the Trainer calls only overridden hooks,
so an unused hook costs nothing per step, and `on_train_call_end` only from the step
`next_due()` names (one integer comparison per call until then). Callbacks ask, the
Trainer decides: `trainer.request_save(kind, reason)` and `trainer.request_stop(reason)`
are carried out at one point after all of a call's hooks, and the checkpoint that ends a
run is written once, by the Trainer, when the stop's kind is among some callback's
`saves_on_stop`; so the order of the callback list never changes what is saved.

Bookkeeping a callback keeps across a resume goes through `state_dict()` /
`load_state_dict()` and travels inside every checkpoint under `state_key`;
`state_dict()` only reads. What a callback publishes for others and for the run's
summary goes through one channel: its `summary()`, which `trainer.summary()` merges
(`FinalizeCallback` writes it into summary.json, a progress display shows it);
callbacks never import or look for each other. A public method named like a hook that
is not one (`on_train_batch_end`, `set_up`, the retired `on_before_save_checkpoint`) is
refused when the Trainer is built.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emergence.checkpoint import CheckpointRef, KeepPolicy, SavePolicy
    from emergence.stop import StopReason

Metrics = dict[str, Any]
Trainer = Any  # an `emergence.Trainer`: not imported here, so the Trainer can import this module without a cycle

EVERY_CALL = 0  # a `next_due()` that is always reached: `on_train_call_end` runs after every call

HOOKS = (
    "setup",
    "on_fit_start",
    "on_train_call_end",
    "on_validation_end",
    "on_save_checkpoint",
    "on_load_checkpoint",
    "on_exception",
    "on_fit_end",
    "teardown",
)


class Callback:
    """Base class for everything that hangs on the training loop.

    `can_stop` is True on callbacks that can end a run by themselves (a time budget, a
    signal, early stopping): with `max_steps=None` the Trainer warns when none can.
    `saves_on_stop` names the stop kinds (`emergence.stop.KINDS`) after which this
    callback wants the run's end checkpoint written; the Trainer writes it once, of the
    kind the stop decides (`final` after a clean stop, `emergency` after a signal, an
    exception or an exit), whichever callbacks asked. `save_policy` (when a periodic
    checkpoint is due) and `keep_policies` (which files of a kind to keep) are handed to the
    run's `CheckpointManager` as `fit()` starts: the Trainer asks the policy at its save
    point, so a callback that only schedules saves needs no hook at all.
    """

    can_stop: bool = False
    saves_on_stop: frozenset[str] = frozenset()
    save_policy: "SavePolicy | None" = None
    keep_policies: "tuple[KeepPolicy, ...]" = ()

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a checkpoint; override when two instances coexist."""
        return type(self).__qualname__

    def state_dict(self) -> dict[str, Any]:
        """JSON-able bookkeeping to save in every checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned, on resume."""

    def next_due(self, trainer: "Trainer") -> float:
        """The step from which `on_train_call_end` must run again (asked after each time it ran, after `on_fit_start`
        and after each save or evaluation). `EVERY_CALL` (the default): after every call; a callback with nothing
        to do until step n returns n, and the loop spends one comparison per call until then."""
        return EVERY_CALL

    def summary(self) -> dict[str, Any]:
        """What this callback publishes for other callbacks and the run's summary (JSON-able; reading it changes
        nothing). `trainer.summary()` merges every callback's; keys in use: `metrics` and `metrics_step`
        (the values a logger last wrote), `time_left` (seconds before a time budget's deadline), `rollbacks`
        (a divergence guard's)."""
        return {}

    def setup(self, trainer: "Trainer") -> None:
        """Before anything else in `fit()`: install handlers, open files."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        """The state is ready (fresh or resumed) and training is about to start."""

    def on_train_call_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        """After each jitted call; `metrics` are device arrays: fetch them only when acting."""

    def on_validation_end(self, trainer: "Trainer", metrics: Metrics) -> None:
        """After `eval_step` ran; `metrics` are device arrays."""

    def on_save_checkpoint(self, trainer: "Trainer", ref: "CheckpointRef") -> None:
        """A checkpoint is durable on disk."""

    def on_load_checkpoint(self, trainer: "Trainer", ref: "CheckpointRef") -> None:
        """The state and every callback's state were restored from `ref`."""

    def on_exception(self, trainer: "Trainer", exception: BaseException) -> None:
        """A step or a callback raised; the exception is re-raised after this hook."""

    def on_fit_end(self, trainer: "Trainer", reason: "StopReason") -> None:
        """Training stopped for `reason` (a `StopReason`: `reason.kind` is `max_steps`, `signal`, ...); the end
        checkpoint, if any, is durable."""

    def teardown(self, trainer: "Trainer") -> None:
        """Last thing in `fit()`, whatever happened: close files, restore handlers."""


def overrides(callback: Callback, hook: str) -> bool:
    """True when the callback's class replaces the base class's no-op `hook`."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


def hook_table(callbacks: list[Callback]) -> dict[str, tuple[Callable, ...]]:
    """For each hook, the bound methods of the callbacks that override it."""
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"{cb!r} is not an emergence Callback; subclass emergence.Callback")
        check_hook_names(cb)
    keys = [cb.state_key for cb in callbacks]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"two callbacks share state_key {duplicates[0]!r}; give one a distinct state_key")
    return {hook: tuple(getattr(cb, hook) for cb in callbacks if overrides(cb, hook)) for hook in HOOKS}


def check_hook_names(callback: Callback) -> None:
    """Refuse a public method named like a hook that is not one (`on_train_batch_end`, `set_up`): it never fires."""
    for klass in type(callback).__mro__:
        if klass is Callback or not issubclass(klass, Callback):
            break
        for name, value in vars(klass).items():
            if name.startswith("_") or name in HOOKS or not _is_method(value):
                continue
            if name.startswith("on_") or difflib.get_close_matches(name, ("setup", "teardown"), n=1, cutoff=0.8):
                raise ValueError(
                    f"{type(callback).__name__}.{name} is not a hook, so it would never be called; "
                    f"rename it to one of {', '.join(HOOKS)} (or prefix it with _)"
                )


def _is_method(value: Any) -> bool:
    return callable(value) or isinstance(value, (staticmethod, classmethod))
