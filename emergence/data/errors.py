"""The errors of host data: each a one-line message that says what to write instead."""

from __future__ import annotations

from emergence.errors import EmergenceError


class DataError(EmergenceError, ValueError):
    """Training data that cannot be used as given (empty, not a pytree of arrays, a position it cannot reach)."""


class DataResumeError(DataError):
    """A saved data position that this data cannot be brought back to (a one-shot iterator, another kind of data)."""


class BatchChangedError(DataError, TypeError):
    """A batch whose structure, shapes or dtypes differ from the first batch's."""
