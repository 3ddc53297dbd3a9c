"""Stops: the one place a stop is proposed and agreed, on one process or across `jax.distributed`.

The shape of Lightning's `should_stop = trainer.strategy.broadcast(should_stop)`: a
callback that wants the run to stop calls `trainer.request_stop(reason)` (which proposes it here), and anything
that acts on a stop reads `trainer.stops.agreed`. This service knows nothing of
callbacks; it knows reasons (`StopReason`s, exchanged as their short text) and who may
propose them:

- `any_process=True`: something one process sees (a signal): the first proposal in
  process order stops every process;
- `any_process=False` (default): a decision each process could make differently (a
  time budget on its own clock): process 0's proposal alone counts.
A proposal of the first kind outranks one of the second in the same round.

On one process a proposal is agreed at once. Under `jax.distributed` (the Trainer makes
its `Stops` with `jax.process_count()` as `fit()` starts) a save of a state that spans
processes is a collective, so every process must stop, and save, at the same step:
every `AGREE_EVERY_N_CALLS` calls and after the last call the Trainer runs `call_ended`,
which gathers each process's proposals, encoded as fixed-size UTF-8 byte arrays (no
registry of reasons), with one small `process_allgather` (a collective, so the host
waits for the device work queued ahead of it: hence every few calls, not each). A stop
therefore takes effect up to `AGREE_EVERY_N_CALLS` calls later than on one process.
The agreed reason is handed to `on_agreed` (the Trainer, which stops at that boundary).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from emergence.stop import StopReason, as_stop_reason

AGREE_EVERY_N_CALLS = 8
REASON_BYTES = 64
ANY, PROCESS_0 = 0, 1

Gather = Callable[[np.ndarray], np.ndarray]


class Stops:
    """Stop proposals and the decision every process agreed on; see the module docstring.

    Args:
        processes: how many processes must agree (1: every proposal is agreed at once).
        on_agreed: called once with the agreed reason (the Trainer passes its stop).
        every_n_calls: calls between agreements when `processes > 1`.
        gather: stacks every process's array in process order (default: JAX's `process_allgather`).
    """

    def __init__(
        self,
        processes: int = 1,
        *,
        on_agreed: Callable[[StopReason], None] | None = None,
        every_n_calls: int = AGREE_EVERY_N_CALLS,
        gather: Gather | None = None,
    ) -> None:
        self.processes = processes
        self.on_agreed = on_agreed
        self.every_n_calls = every_n_calls
        self.agreed: StopReason | None = None
        self._gather = gather or _process_allgather
        self._proposed: list[StopReason | None] = [None, None]
        self._calls = 0

    def propose(self, reason: StopReason | str, *, any_process: bool = False) -> None:
        """Ask every process to stop with `reason` (see the module docstring); the first proposal of each kind stays.

        Only sets attributes: safe to call from a signal handler.
        """
        reason = as_stop_reason(reason)  # a string names a `user` stop
        _encode(str(reason))
        slot = ANY if any_process else PROCESS_0
        if self._proposed[slot] is None:
            self._proposed[slot] = reason
        if self.processes == 1:
            self._agree_on(reason)

    def call_ended(self, last: bool) -> None:
        """After each train call (the Trainer, before the call's hooks): agree when it is time. One process: nothing."""
        if self.processes == 1 or self.agreed is not None:
            return
        self._calls += 1
        if last or self._calls % self.every_n_calls == 0:
            self.agree()

    def agree(self) -> StopReason | None:
        """The collective: every process's proposals gathered, the agreed reason applied; that reason, or None."""
        mine = np.stack([_encode(str(reason or ""), allow_empty=True) for reason in self._proposed])
        table = np.asarray(self._gather(mine)).reshape(-1, 2, REASON_BYTES)
        anywhere = [_decode(row[ANY]) for row in table]
        chosen = next((reason for reason in anywhere if reason), None) or _decode(table[0, PROCESS_0])
        if chosen:
            self._agree_on(StopReason.parse(chosen))
        return self.agreed

    def _agree_on(self, reason: StopReason) -> None:
        if self.agreed is None:
            self.agreed = reason
            if self.on_agreed is not None:
                self.on_agreed(reason)


def _encode(reason: str, *, allow_empty: bool = False) -> np.ndarray:
    """`reason` as `REASON_BYTES` UTF-8 bytes, zero-padded; a one-line error when it does not fit."""
    if not isinstance(reason, str) or not (reason or allow_empty):
        raise ValueError(f"a stop reason must be a non-empty string, got {reason!r}")
    raw = reason.encode()
    if len(raw) > REASON_BYTES or b"\0" in raw:
        raise ValueError(
            f"stop reason {reason!r} is {len(raw)} bytes of UTF-8 (or holds NUL); "
            f"the processes agree on at most {REASON_BYTES}: shorten it"
        )
    return np.frombuffer(raw.ljust(REASON_BYTES, b"\0"), dtype=np.uint8)


def _decode(row: np.ndarray) -> str:
    return bytes(np.asarray(row, dtype=np.uint8)).rstrip(b"\0").decode()


def _process_allgather(array: np.ndarray) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array))
