"""Every: the one rule for "is it time?", shared by checkpoints, logging, trackers, artifacts and evaluation."""

from __future__ import annotations

import pytest

from emergence.metrics import Every as ReExported
from emergence.schedule import Every
from emergence.testing import FakeClock


def test_due_at_the_first_boundary_at_or_past_each_multiple_whatever_the_call_size():
    every = Every(5)
    due = []
    for step in range(3, 31, 3):  # calls of 3 steps: 3, 6, 9, ...
        if every.due(step):
            due.append(step)
            every.done(step)
    assert due == [6, 12, 15, 21, 27, 30]


def test_counting_starts_where_done_says_so_after_a_resume():
    every = Every(4)
    every.done(10)
    assert not every.due(11) and every.due(12)


def test_seconds_and_steps_together():
    clock = FakeClock(0.0)
    every = Every(100, 60.0, clock)
    assert not every.due(1)
    clock.advance(60.0)
    assert every.due(1)
    every.done(1)
    assert not every.due(2) and every.due(100)


def test_a_schedule_by_steps_alone_never_reads_the_clock():
    def clock():
        raise AssertionError("a steps-only schedule read the clock")

    every = Every(3, None, clock)
    assert [every.due(step) for step in (1, 2, 3)] == [False, False, True]


def test_metrics_keeps_the_old_import_path():
    assert ReExported is Every


@pytest.mark.parametrize(
    "steps, seconds, message",
    [
        (0, None, "Thing: every_n_steps must be a positive integer or None, got 0"),
        (True, None, "Thing: every_n_steps must be a positive integer or None, got True"),
        (None, -1.0, "Thing: every_n_seconds must be positive seconds or None, got -1.0"),
    ],
)
def test_bad_intervals_are_one_line_errors(steps, seconds, message):
    with pytest.raises(ValueError, match=message):
        Every(steps, seconds, owner="Thing")
