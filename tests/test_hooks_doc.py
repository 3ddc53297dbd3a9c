"""docs/hooks.md lists every hook with its real signature, every for_platform key, and its example runs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from emergence import Callback
from emergence.callbacks.base import HOOKS
from emergence.platforms.presets import ORDER

DOC = (Path(__file__).resolve().parents[1] / "docs" / "hooks.md").read_text()


def test_the_hook_table_is_every_hook_with_its_signature():
    rows = re.findall(r"^\| `(\w+)` \| `(\w+\(.*?\))` \|", DOC, re.M)
    assert sorted(hook for hook, _ in rows) == sorted(HOOKS)
    for hook, shown in rows:
        parameters = list(inspect.signature(getattr(Callback, hook)).parameters)
        shown_parameters = re.sub(r"\[.*?\]", "", shown[len(hook) + 1 : -1]).split(",")
        assert [p.split(":")[0].strip() for p in shown_parameters] == parameters, hook


def test_the_preset_table_has_every_key_and_the_example_runs():
    assert re.findall(r"^\| `(\w+)` \| `\w+Callback`", DOC, re.M) == list(ORDER)
    (example,) = re.findall(r"```python\n(.*?)```", DOC, re.S)
    scope: dict = {}
    exec(example, scope)
    names = [type(cb).__name__ for cb in scope["callbacks"]]
    assert "RichProgressCallback" in names and "LogThrottleCallback" not in names
