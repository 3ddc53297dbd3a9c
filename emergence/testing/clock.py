"""FakeClock: time that moves only when a test says so."""

from __future__ import annotations


class FakeClock:
    """A clock that moves only when told to: inject it wherever a callback takes `clock=`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        self.now += seconds
