"""metrics.csv carries the selection, specialisation and tracker-event metrics under the names the report reads."""

import csv
import subprocess
import sys

import pytest

from emergence.lab.event_count import EventCount
from emergence.lab.trackers import EmergenceTracker
from emergence.lab.trackers.population import EmergenceEvent
from tests.helpers import TINY_LAB

NAMES = {
    "env/births",
    "env/deaths",
    "env/population",
    "env/generation_max",
    "env/generation_mean",
    "env/lineages",
    "env/age_at_death",
    "env/selection_opportunity",
    "env/food_gini",
    "spec/index",
    "spec/excess",
    "tracker/events",
}


def event(series: str) -> EmergenceEvent:
    return EmergenceEvent(series, step=1, detected_step=3, direction="up", before=0.0, after=1.0, z=4.0)


def test_event_count_logs_each_trackers_events_and_leaves_the_calls_metrics_alone():
    class Logged:
        values: dict = {}

        def log(self, values):
            self.values = values

    alone = EmergenceTracker(["population"])
    alone.events = [event("population"), event("births")]
    metrics, trainer = {"loss": 1.0}, Logged()
    EventCount([alone]).on_train_call_end(trainer, metrics)
    assert metrics == {"loss": 1.0} and trainer.values == {"tracker/events": 2.0}
    runs = [EmergenceTracker(["population"], name=f"emergence/run_{i}") for i in range(2)]
    runs[1].events = [event("deaths")]
    EventCount(runs).on_fit_start(trainer)
    assert trainer.values == {"tracker/events/run_0": 0.0, "tracker/events/run_1": 1.0, "tracker/events": 0.5}


@pytest.mark.slow
def test_a_train_run_logs_every_selection_metric_to_metrics_csv(tmp_path):
    intervals = ["--train.total-steps", "64", "--train.log-interval", "16", "--train.track-interval", "8"]
    result = subprocess.run(
        [sys.executable, "-m", "emergence.cli", "train", *TINY_LAB, *intervals, "--train.run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert NAMES <= set(rows[0])
    assert all(row["env/population"] != "" for row in rows)
