"""Save and keep policies: "when to save" on the one step rule (`Every`), "what to keep" by step or by a metric."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from emergence.checkpoint.keep_policy import Candidate, KeepBestN, KeepLastN
from emergence.checkpoint.save_policy import AnyOf, Continuous, EveryNSeconds, EveryNSteps, Never, SaveContext, every
from emergence.checkpoint.store import CheckpointRef
from emergence.schedule import Every


def _due_steps(policy, steps, time=0.0):
    policy.start(SaveContext(0, time))
    due = []
    for step in steps:
        context = SaveContext(step, time)
        if policy.should_save(context):
            due.append(step)
            policy.saved(context)
    return due


def test_every_n_steps_follows_the_one_step_rule_of_every():
    calls = range(3, 40, 3)  # steps_per_call 3 does not divide 5
    schedule, expected = Every(5), []
    for step in calls:
        if schedule.due(step):
            expected.append(step)
            schedule.done(step)
    assert _due_steps(EveryNSteps(5), calls) == expected == [6, 12, 15, 21, 27, 30, 36]


def test_every_n_steps_counts_from_the_step_it_starts_at():
    policy = EveryNSteps(10)
    policy.start(SaveContext(25, 0.0))
    assert policy.next_step == 30
    assert not policy.should_save(SaveContext(29, 0.0)) and policy.should_save(SaveContext(30, 0.0))


def test_every_n_seconds_reads_the_contexts_time_not_a_clock():
    policy = EveryNSeconds(60)
    policy.start(SaveContext(0, 1000.0))
    assert not policy.should_save(SaveContext(5, 1059.0))
    assert policy.should_save(SaveContext(6, 1060.0))
    policy.saved(SaveContext(6, 1060.0))
    assert not policy.should_save(SaveContext(7, 1100.0)) and policy.next_step == 0


def test_any_of_is_due_when_either_is_and_a_save_resets_both():
    policy = AnyOf(EveryNSteps(10), EveryNSeconds(60))
    policy.start(SaveContext(0, 0.0))
    assert policy.should_save(SaveContext(4, 61.0))
    policy.saved(SaveContext(4, 61.0))
    assert not policy.should_save(SaveContext(9, 62.0)) and policy.should_save(SaveContext(10, 62.0))
    assert policy.next_step == 0  # the seconds half must look at every call


def test_continuous_waits_for_the_write_in_flight_and_the_minimum_interval():
    policy = Continuous(min_interval_s=30)
    policy.start(SaveContext(10, 0.0))
    assert not policy.should_save(SaveContext(10, 0.0))  # nothing trained since the start
    assert policy.should_save(SaveContext(11, 0.0))  # the first save does not wait for the interval
    policy.saved(SaveContext(11, 0.0))
    assert not policy.should_save(SaveContext(12, 40.0, saving=True))
    assert not policy.should_save(SaveContext(12, 29.0))
    assert policy.should_save(SaveContext(12, 30.0))


def test_every_builds_the_policy_for_lightning_shaped_arguments():
    assert isinstance(every(), Never) and math.isinf(every().next_step)
    assert isinstance(every(steps=5), EveryNSteps) and isinstance(every(seconds=3.0), EveryNSeconds)
    assert isinstance(every(5, 3.0), AnyOf)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_a_bad_step_interval_is_a_one_line_error(bad):
    with pytest.raises(ValueError, match="must be a positive integer"):
        EveryNSteps(bad)


def test_a_bad_minimum_interval_is_a_one_line_error():
    with pytest.raises(ValueError, match="min_interval_s must be zero or positive"):
        Continuous(-1)


def _candidates(kind, values):
    prefix = {"periodic": "step_", "best": "best_step_"}[kind]
    return [
        Candidate(CheckpointRef(Path(f"{prefix}{step}.safetensors"), kind, step), {"val": value})
        for step, value in values.items()
    ]


def test_keep_last_n_keeps_the_newest_by_step():
    kept = KeepLastN(2).keep(_candidates("periodic", {30: 0, 10: 0, 20: 0}))
    assert [c.ref.step for c in kept] == [20, 30]


@pytest.mark.parametrize("mode, kept", [("min", [30, 10]), ("max", [20, 40])])
def test_keep_best_n_ranks_by_the_monitored_metric(mode, kept):
    candidates = _candidates("best", {10: 0.5, 20: 0.9, 30: 0.1, 40: 0.7})
    assert [c.ref.step for c in KeepBestN("val", mode, n=2).keep(candidates)] == kept


def test_keep_best_n_never_ranks_nan_and_keeps_the_older_file_on_a_tie():
    candidates = _candidates("best", {10: float("nan"), 20: 0.3, 30: 0.3})
    assert [c.ref.step for c in KeepBestN("val", "min", n=2).keep(candidates)] == [20, 30]
    rule = KeepBestN("val", "min", n=1)
    assert not rule.admits(0.3, _candidates("best", {20: 0.3}))  # a tie does not displace
    assert rule.admits(0.2, _candidates("best", {20: 0.3}))
    assert not rule.admits(float("nan"), [])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: KeepLastN(0), "n \\(keep_last\\) must be a positive integer"),
        (lambda: KeepBestN("val", "median"), "mode must be 'min' or 'max'"),
        (lambda: KeepBestN("", "min"), "monitor must be a metric name"),
        (lambda: KeepBestN("val", "min", n=0), "n \\(save_top_k\\) must be a positive integer"),
        (lambda: KeepBestN("val", kind="emergency"), "kind must be one of periodic, best"),
    ],
)
def test_a_bad_keep_policy_is_a_one_line_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()
