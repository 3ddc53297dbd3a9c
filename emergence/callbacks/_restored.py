"""Callback state read back from a checkpoint: checked for type before a callback uses it.

A checkpoint may come from someone else (a download, an attached Kaggle input) and its
checksum is recomputable by anyone, so what `load_state_dict` receives is data to check,
never a path or a command: a wrong type is a one-line `CorruptCheckpointError` that says
what to do, before anything acts on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from emergence.errors import CorruptCheckpointError


def restored_refusal(owner: str, key: str, value: Any, wanted: str) -> CorruptCheckpointError:
    """The one-line error for a restored `key` holding `value`, which is not `wanted`."""
    shown = repr(value)[:60]
    return CorruptCheckpointError(
        f"{owner}: the checkpoint's {key!r} is {shown}, not {wanted}; the file is damaged or not from this "
        f"callback: resume from another checkpoint or start a new run dir"
    )


def restored_state(owner: str, state: Any) -> Mapping[str, Any]:
    """`state` itself when it is a mapping (what `state_dict` returned), else the one-line refusal."""
    if not isinstance(state, Mapping):
        raise restored_refusal(owner, "state", state, "a mapping")
    return state


def count(owner: str, state: Mapping[str, Any], key: str, default: int | None = 0) -> int | None:
    """`state[key]` as an integer >= 0 (absent: `default`; None allowed only when `default` is None)."""
    value = state.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise restored_refusal(owner, key, value, "an integer >= 0" + (" or null" if default is None else ""))
    return value


def number(owner: str, state: Mapping[str, Any], key: str, default: float | None = 0.0) -> float | None:
    """`state[key]` as a finite float (absent: `default`; None allowed only when `default` is None)."""
    value = state.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise restored_refusal(owner, key, value, "a finite number" + (" or null" if default is None else ""))
    return float(value)


def flag(owner: str, state: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """`state[key]` as a bool (absent: `default`)."""
    value = state.get(key, default)
    if not isinstance(value, bool):
        raise restored_refusal(owner, key, value, "true or false")
    return value


def records(owner: str, state: Mapping[str, Any], key: str, fields: tuple[str, ...]) -> list[dict[str, int]]:
    """`state[key]` as a list of records, each with these integer (>= 0) `fields` (others dropped)."""
    value = state.get(key, [])
    if not isinstance(value, list):
        raise restored_refusal(owner, key, value, "a list")
    found = []
    for entry in value:
        entry = restored_state(owner, entry)
        if any(field not in entry for field in fields):
            raise restored_refusal(owner, key, entry, f"records with {', '.join(fields)}")
        found.append({field: count(owner, entry, field) for field in fields})
    return found
