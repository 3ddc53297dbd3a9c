"""A public method named like a hook that is not one never fires: the Trainer refuses it when it is built."""

from __future__ import annotations

import pytest

from emergence import Callback, Trainer
from emergence.callbacks.base import HOOKS
from emergence.testing import toy_task


class LightningHabit(Callback):
    def on_train_batch_end(self, trainer, metrics):
        pass


class Typo(Callback):
    def on_fit_strat(self, trainer):
        pass


class SetUp(Callback):
    def set_up(self, trainer):
        pass


class TearDown(Callback):
    def tear_down(self, trainer):
        pass


class Inherited(LightningHabit):
    pass


@pytest.mark.parametrize(
    "callback, name",
    [
        (LightningHabit(), "LightningHabit.on_train_batch_end"),
        (Typo(), "Typo.on_fit_strat"),
        (SetUp(), "SetUp.set_up"),
        (TearDown(), "TearDown.tear_down"),
        (Inherited(), "Inherited.on_train_batch_end"),
    ],
)
def test_a_method_named_like_a_hook_is_a_one_line_error_naming_the_valid_hooks(callback, name):
    with pytest.raises(ValueError) as caught:
        Trainer(toy_task(), [callback], max_steps=1)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{name} is not a hook")
    assert all(hook in message for hook in HOOKS)


class Fine(Callback):
    """Hooks, helpers, private methods and properties with other names are all fine."""

    def on_fit_start(self, trainer):
        pass

    def export(self, trainer):
        pass

    def status(self):
        pass

    def settle(self):
        pass

    def _on_helper(self):
        pass

    @property
    def on_value(self):
        return 1


def test_hooks_helpers_private_methods_and_properties_pass(tmp_path):
    Trainer(toy_task(), [Fine()], max_steps=1, run_dir=tmp_path)


def test_every_callback_the_framework_ships_passes():
    import importlib
    import pkgutil

    import emergence.callbacks as package

    shipped = []
    for module in pkgutil.iter_modules(package.__path__):
        loaded = importlib.import_module(f"emergence.callbacks.{module.name}")
        shipped += [
            v
            for v in vars(loaded).values()
            if isinstance(v, type) and issubclass(v, Callback) and v.__module__ == loaded.__name__
        ]
    from emergence.callbacks.base import check_hook_names as _check_hook_names

    for klass in shipped:
        _check_hook_names(klass.__new__(klass))
    assert len(shipped) >= 10
