"""Stops: one service agrees on a stop on one process at once, and across processes every few calls."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from emergence.parallel.stops import REASON_BYTES, Stops
from emergence.stop import StopReason

TIME_BUDGET = StopReason("time_budget")


def test_on_one_process_the_first_proposal_is_agreed_at_once_and_handed_on_once():
    handed = []
    stops = Stops(on_agreed=handed.append)
    stops.propose(TIME_BUDGET)
    stops.propose(StopReason("signal", "SIGTERM"), any_process=True)
    assert stops.agreed == "time_budget" and handed == ["time_budget"]
    stops.call_ended(last=True)  # one process: no gather, nothing changes
    assert handed == ["time_budget"]


class World:
    """`n` fake processes whose `gather` meets at a barrier, as `process_allgather` does."""

    def __init__(self, n: int) -> None:
        self.arrays: list = [None] * n
        self.barrier = threading.Barrier(n)
        self.gathers = 0
        self.stops = [Stops(n, gather=self.gather_for(i), every_n_calls=4) for i in range(n)]

    def gather_for(self, index: int):
        def gather(mine: np.ndarray) -> np.ndarray:
            self.arrays[index] = mine
            self.barrier.wait()
            table = np.stack(self.arrays)
            if self.barrier.wait() == 0:
                self.gathers += 1
            return table

        return gather

    def together(self, action) -> list:
        """Run `action(stops)` on every process at once; what each returned."""
        results = [None] * len(self.stops)

        def run(i):
            results[i] = action(self.stops[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(self.stops))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        return results


def test_a_signal_on_process_1_beats_process_0s_budget_and_every_process_agrees():
    world = World(2)
    world.stops[0].propose(TIME_BUDGET)
    world.stops[1].propose(StopReason("signal", "SIGTERM"), any_process=True)
    assert [s.agreed for s in world.stops] == [None, None]  # nothing until the processes meet
    assert world.together(lambda s: s.agree()) == ["signal:SIGTERM", "signal:SIGTERM"]


def test_only_process_0s_ordinary_proposal_counts():
    world = World(3)
    world.stops[1].propose(TIME_BUDGET)
    assert world.together(lambda s: s.agree()) == [None, None, None]
    world.stops[0].propose("early_stop")
    assert world.together(lambda s: s.agree()) == ["early_stop"] * 3


def test_of_several_signals_the_first_in_process_order_wins():
    world = World(3)
    world.stops[2].propose(StopReason("signal", "SIGINT"), any_process=True)
    world.stops[1].propose(StopReason("signal", "SIGUSR1"), any_process=True)
    assert world.together(lambda s: s.agree()) == ["signal:SIGUSR1"] * 3


def test_the_processes_meet_every_n_calls_and_after_the_last_call_only():
    world = World(2)
    world.together(lambda s: [s.call_ended(last=False) for _ in range(9)])  # meets at calls 4 and 8
    assert world.gathers == 2
    world.together(lambda s: s.call_ended(last=True))
    assert world.gathers == 3


def test_the_agreed_reason_is_handed_to_on_agreed_on_every_process():
    handed = []
    world = World(2)
    for stops in world.stops:
        stops.on_agreed = handed.append
    world.stops[0].propose(TIME_BUDGET)
    world.together(lambda s: s.agree())
    assert handed == ["time_budget", "time_budget"]


@pytest.mark.parametrize(
    "reason, message",
    [
        ("x" * (REASON_BYTES + 1), f"is {REASON_BYTES + 1} bytes of UTF-8 .*at most {REASON_BYTES}: shorten it"),
        ("", "a stop reason is a StopReason or a non-empty string"),
        (3, "a stop reason is a StopReason or a non-empty string"),
    ],
)
def test_a_reason_the_processes_cannot_carry_is_a_one_line_error(reason, message):
    with pytest.raises(ValueError, match=message):
        Stops().propose(reason)


def test_a_new_stop_is_one_callback_that_proposes(tmp_path):
    from emergence import Callback, Trainer
    from emergence.testing import toy_task

    class Enough(Callback):
        can_stop = True

        def on_train_call_end(self, trainer, metrics):
            if trainer.step == 3:
                trainer.request_stop("enough")  # a string names a `user` stop

        def on_fit_end(self, trainer, reason):
            self.reason = reason

    enough = Enough()
    trainer = Trainer(callbacks=[enough], max_steps=None, run_dir=tmp_path, resume=None)
    trainer.fit(toy_task())
    assert trainer.step == 3 and trainer.stop_reason == enough.reason == trainer.stops.agreed == "enough"
    assert trainer.stop_reason.kind == "user" and trainer.exit_code == 0
