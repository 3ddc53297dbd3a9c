"""An iterator's own position (`get_state()` / `set_state()`, as Grain's iterators have) as JSON for a manifest.

A checkpoint keeps everything that is not an array as JSON in its metadata, and
pickle is never loaded; so an iterator's state is kept only if it is JSON already.
Grain's dataset iterators give a dict (`{"next_index": 7}`); `grain.DataLoader`'s
iterator gives the same as JSON text in bytes, which is kept as the parsed JSON and
handed back as bytes. Anything else is a one-line error at the first save, not a
pickle.
"""

from __future__ import annotations

import json
from typing import Any

from emergence.data.errors import DataError

BYTES = "json-bytes"


def has_state(iterator: Any) -> bool:
    """True for an iterator that can say where it is and go back there (Grain's do)."""
    return callable(getattr(iterator, "get_state", None)) and callable(getattr(iterator, "set_state", None))


def saved_state(iterator: Any) -> dict[str, Any]:
    """`iterator.get_state()` as a fresh JSON-able dict (a copy: the iterator moves on, the saved position does not)."""
    state = iterator.get_state()
    if isinstance(state, (bytes, bytearray)):
        try:
            return {"format": BYTES, "state": json.loads(bytes(state).decode("utf-8"))}
        except (UnicodeDecodeError, ValueError):
            raise DataError(_not_json(iterator, "bytes that are not JSON")) from None
    try:
        return {"format": "json", "state": json.loads(json.dumps(state))}
    except (TypeError, ValueError):
        raise DataError(_not_json(iterator, f"a {type(state).__name__} that is not JSON-able")) from None


def restore_state(iterator: Any, saved: dict[str, Any]) -> None:
    """Put `iterator` back where `saved_state` found it."""
    state = saved["state"]
    iterator.set_state(json.dumps(state).encode("utf-8") if saved.get("format") == BYTES else state)


def _not_json(iterator: Any, what: str) -> str:
    return (
        f"{type(iterator).__name__}.get_state() returned {what}; a checkpoint keeps an iterator's position only as "
        "JSON (pickle is never loaded): return a dict of numbers and strings, or drop get_state to resume by skipping"
    )
