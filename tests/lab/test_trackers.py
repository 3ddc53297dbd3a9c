"""Trackers: emergence events, specialisation, exact JSON state, and TrackerCallback across saves, kills and resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback, TrackerCallback
from emergence.checkpoint import list_checkpoints, read_checkpoint, read_manifest
from emergence.lab.trackers import EmergenceTracker, SpecializationTracker, specialization_index, weight_divergence
from emergence.testing import fire, toy_task
from tests.helpers import SCRIPTS, assert_same_arrays, probe, tracker_pair, wait_for_line


def feed(tracker, points, key="population", start=1):
    events = []
    for offset, value in enumerate(points):
        events += tracker.update(start + offset, {key: value})
    return events


def noisy_level(rng, level, n, scale=0.1):
    return list(level + scale * rng.standard_normal(n))


def test_a_sustained_shift_is_one_event_at_its_onset_step():
    rng = np.random.default_rng(0)
    tracker = EmergenceTracker(["population"], window=10, k=3.0, sustain=3)
    events = feed(tracker, noisy_level(rng, 8.0, 20) + noisy_level(rng, 12.0, 10))
    assert len(events) == 1
    event = events[0]
    assert (event.series, event.step, event.detected_step, event.direction) == ("population", 21, 23, "up")
    assert event.before == pytest.approx(8.0, abs=0.1) and event.after == pytest.approx(12.0, abs=0.2)
    assert event.z > 3.0 and tracker.events == events


def test_a_spike_shorter_than_sustain_is_not_an_event():
    rng = np.random.default_rng(1)
    tracker = EmergenceTracker(["population"], window=10, k=3.0, sustain=3)
    points = noisy_level(rng, 8.0, 20) + [20.0, 20.0] + noisy_level(rng, 8.0, 10)
    assert feed(tracker, points) == []


def test_no_event_is_tested_before_a_full_window():
    tracker = EmergenceTracker(["population"], window=10, k=3.0, sustain=2)
    assert feed(tracker, [1.0] * 5 + [100.0] * 4) == []


def test_after_an_event_the_next_needs_a_full_window_of_the_new_level():
    tracker = EmergenceTracker(["population"], window=4, k=3.0, sustain=2)
    events = feed(tracker, [8.0] * 4 + [12.0] * 3 + [20.0] * 3)
    assert [e.step for e in events] == [5]  # the drop to 20 at point 8 has only 3 points of the new level behind it
    events = feed(tracker, [20.0] * 3 + [40.0] * 2, start=11)
    assert [(e.step, e.direction) for e in events] == [(14, "up")]


def test_a_flat_window_counts_a_real_change_and_a_downward_one():
    tracker = EmergenceTracker(["population"], window=5, k=3.0, sustain=2)
    events = feed(tracker, [8.0] * 5 + [7.0] * 2)
    assert [(e.step, e.direction, e.before, e.after) for e in events] == [(6, "down", 8.0, 7.0)]


def test_series_are_read_through_their_keys_and_non_finite_values_skipped():
    tracker = EmergenceTracker({"food": "food_per_agent_step"}, window=3)
    tracker.update(1, {"food_per_agent_step": np.array([0.5, 1.5])})
    tracker.update(2, {"food_per_agent_step": float("nan")})
    tracker.update(3, {"food_per_agent_step": np.float32(2.0)})
    assert tracker.history.steps("food").tolist() == [1, 3] and tracker.history.values("food").tolist() == [1.0, 2.0]


def test_bad_tracker_input_says_what_to_do():
    tracker = EmergenceTracker(["population"])
    with pytest.raises(KeyError, match="pass series="):
        tracker.update(1, {"loss": 1.0})
    tracker.update(5, {"population": 1.0})
    with pytest.raises(ValueError, match="steps must increase"):
        tracker.update(5, {"population": 2.0})
    with pytest.raises(ValueError, match="window"):
        EmergenceTracker(window=1)
    with pytest.raises(ValueError, match="sustain"):
        EmergenceTracker(sustain=0)
    with pytest.raises(KeyError, match="per-agent action counts"):
        SpecializationTracker().update(1, {"population": 3})
    with pytest.raises(ValueError, match="unknown SpecializationTracker keys"):
        SpecializationTracker(keys={"actions": "a"})


def test_specialization_index_is_one_for_distinct_specialists_and_zero_for_clones():
    specialists = np.array([[10, 0, 0], [0, 10, 0], [0, 0, 10]])
    clones = np.array([[3, 2, 5], [6, 4, 10], [3, 2, 5]])
    assert specialization_index(specialists)["specialization_index"] == pytest.approx(1.0)
    assert specialization_index(clones)["specialization_index"] == pytest.approx(0.0, abs=1e-12)
    assert specialization_index(np.array([[4, 0], [7, 0]]))["specialization_index"] == 0.0
    assert specialization_index(np.zeros((3, 2))) is None
    half = specialization_index(np.array([[10, 0], [5, 5]]))
    assert 0.0 < half["specialization_index"] < 1.0


def test_weight_divergence_is_the_rms_distance_to_the_mean_over_alive_agents():
    assert weight_divergence(np.array([[0.0, 0.0], [6.0, 8.0]])) == pytest.approx(5.0)
    tracker = SpecializationTracker()
    params = {"w": np.array([[0.0, 0.0], [6.0, 8.0], [100.0, 100.0]]), "b": np.zeros((3, 1))}
    out = tracker.update(
        7,
        {
            "action_counts": np.ones((3, 5)),
            "agent_params": params,
            "alive": np.array([True, True, False]),
            "movement": np.array([5.0, 0.0, 0.0]),
        },
    )
    assert out["weight_divergence"] == pytest.approx(5.0)
    assert out["movement_rate"] == pytest.approx(1 / 3)
    assert tracker.profile["action_distribution"][0] == [0.2] * 5 and tracker.profile["movement_rate"][0] == 1.0


def random_values(rng):
    return {
        "population": rng.integers(1, 30),
        "births": rng.random(),
        "deaths": rng.random() * 1e-7,
        "food": rng.random() * 1e9,
        "mean_energy": rng.standard_normal(),
        "lifespan": rng.random() / 3,
        "action_counts": rng.random((4, 5)),
        "movement": rng.random(4),
        "agent_params": rng.random((4, 3)),
    }


def bits(array):
    return np.asarray(array, dtype=np.float64).view(np.uint64)


@pytest.mark.parametrize("make", [lambda: EmergenceTracker(window=4, k=0.5, sustain=1), SpecializationTracker])
def test_tracker_state_round_trips_through_json_bitwise_and_continues_identically(make):
    rng = np.random.default_rng(2)
    original = make()
    for step in range(1, 40):
        original.update(step, random_values(rng))
    restored = make()
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    for name in original.history.names:
        assert np.array_equal(bits(original.history.values(name)), bits(restored.history.values(name)))
    for step in range(40, 60):
        values = random_values(rng)
        assert original.update(step, values) == restored.update(step, values)
    assert json.dumps(original.state_dict()) == json.dumps(restored.state_dict())
    if isinstance(original, EmergenceTracker):
        assert original.events, "the test should exercise saved events"


def test_samples_at_each_interval_and_at_max_steps_with_one_fetch_each(tmp_path, monkeypatch):
    fetched = []
    real_get = jax.device_get
    monkeypatch.setattr(jax, "device_get", lambda tree: fetched.append(sorted(tree)) or real_get(tree))
    callback = TrackerCallback(every_n_steps=5, trackers=tracker_pair(), probe=probe)
    Trainer(toy_task(), [callback], max_steps=13, steps_per_call=2, run_dir=tmp_path, resume=None).fit()
    assert callback.trackers[0].history.steps("loss").tolist() == [6, 10, 13]
    assert callback.trackers[1].history.steps("specialization_index").tolist() == [6, 10, 13]
    assert fetched == [["action_counts", "agent_params", "grad_norm", "loss"]] * 3


def test_between_samples_nothing_leaves_the_device(tmp_path):
    callback = TrackerCallback(every_n_steps=100, trackers=tracker_pair(), probe=probe)
    trainer = Trainer(toy_task(), [callback], max_steps=200, run_dir=tmp_path, resume=None)
    trainer._state, trainer.last_metrics = trainer._calls.get(1)(trainer.task.init_state(jax.random.key(0)))
    fire(trainer, "setup")
    trainer.fitting = True
    with jax.transfer_guard_device_to_host("disallow"):
        for step in range(1, 100):
            trainer._step = step
            fire(trainer, "on_train_call_end", trainer.last_metrics)
    assert callback.trackers[0].history.names == []
    trainer._step = 100
    fire(trainer, "on_train_call_end", trainer.last_metrics)
    assert callback.trackers[0].history.steps("loss").tolist() == [100]


def test_a_checkpoint_at_a_sampling_step_holds_that_sample_whatever_the_callback_order(tmp_path):
    callback = TrackerCallback(every_n_steps=4, trackers=tracker_pair(), probe=probe)
    Trainer(
        toy_task(),
        [CheckpointCallback(every_n_steps=8, keep_last=None), callback],
        max_steps=16,
        run_dir=tmp_path,
        resume=None,
    ).fit()
    saved = read_manifest(tmp_path / "checkpoints" / "step_8.safetensors")["callbacks"][callback.state_key]
    assert saved["trackers"]["emergence"]["history"]["loss"]["steps"] == [4, 8]
    assert saved["last_sample_step"] == 8


def test_resume_in_process_continues_history_without_gaps_or_duplicates(tmp_path):
    def run(run_dir, max_steps):
        callback = TrackerCallback(every_n_steps=3, trackers=tracker_pair(), probe=probe)
        Trainer(toy_task(), [CheckpointCallback(every_n_steps=6), callback], max_steps=max_steps, run_dir=run_dir).fit()
        return callback

    straight = run(tmp_path / "straight", 20)
    run(tmp_path / "split", 11)
    resumed = run(tmp_path / "split", 20)
    assert resumed.trackers[0].history.steps("loss").tolist() == [3, 6, 9, 11, 12, 15, 18, 20]
    assert straight.trackers[0].history.steps("loss").tolist() == [3, 6, 9, 12, 15, 18, 20]
    # The split run sampled its own end (step 11, its max_steps); otherwise the histories agree value for value.
    split_loss = dict(zip(resumed.trackers[0].history.steps("loss"), bits(resumed.trackers[0].history.values("loss"))))
    for step, value in zip(
        straight.trackers[0].history.steps("loss"), bits(straight.trackers[0].history.values("loss"))
    ):
        assert split_loss[step] == value


def run_lab(run_dir, max_steps, *args):
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "train_lab.py"), str(run_dir), str(max_steps), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def final_tracker_state(run_dir):
    final = [r for r in list_checkpoints(run_dir / "checkpoints") if r.kind == "final"][-1]
    states = read_checkpoint(final.path).manifest["callbacks"]
    return final.path, json.dumps({k: v for k, v in states.items() if k.startswith("TrackerCallback")}, sort_keys=True)


@pytest.mark.slow  # 14 s of lab subprocesses; CI's slow stage runs it
def test_sigkill_and_resume_gives_tracker_history_bitwise_equal_to_a_straight_run(tmp_path):
    args = ("--every", "12", "--track-every", "3")
    straight = run_lab(tmp_path / "straight", 60, *args)
    killed = run_lab(tmp_path / "killed", 60, *args, "--pause", "0.05")
    wait_for_line(killed, "saved step_24")
    wait_for_line(killed, "step 3")  # some step in 30..39: the samples since step 24 die with the process
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL
    resumed = run_lab(tmp_path / "killed", 60, *args)
    for process in (straight, resumed):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
    straight_path, straight_state = final_tracker_state(tmp_path / "straight")
    resumed_path, resumed_state = final_tracker_state(tmp_path / "killed")
    assert resumed_state == straight_state
    history = json.loads(resumed_state)
    steps = next(iter(history.values()))["trackers"]["emergence"]["history"]["loss"]["steps"]
    assert steps == list(range(3, 61, 3))
    assert_same_arrays(straight_path, resumed_path)


@pytest.mark.parametrize("every", [0, -3, 2.5, True, None])
def test_a_tracker_interval_that_is_not_a_positive_integer_is_one_line(every):
    with pytest.raises(ValueError, match="TrackerCallback: every_n_steps must be a positive integer, got"):
        TrackerCallback(every_n_steps=every, trackers=tracker_pair())
