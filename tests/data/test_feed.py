"""TrainFeed: a loop's view of the data: next call's batches, and a state_dict that resumes exactly."""

from __future__ import annotations

import json

import chex
import grain
import numpy as np

from emergence.data.feed import TrainFeed


def pipeline() -> grain.MapDataset:
    return grain.MapDataset.range(12).shuffle(seed=3).map(lambda i: {"x": np.full((2,), i, np.float32)}).batch(2)


def calls(feed: TrainFeed, count: int | None = None) -> list:
    taken = []
    while count is None or len(taken) < count:
        group = feed.next_call()
        if group is None:
            break
        taken.append(group.batch)
    return taken


def test_a_feed_stopped_mid_epoch_resumes_from_its_state_dict_exactly():
    straight = TrainFeed(pipeline(), steps_per_call=4, max_epochs=3)
    straight.open()
    expected = calls(straight)
    assert straight.epoch == 3
    first = TrainFeed(pipeline(), steps_per_call=4, max_epochs=3)
    first.open()
    taken = calls(first, 2)  # 8 batches: into the second epoch of 6
    saved = json.loads(json.dumps(first.state_dict()))
    first.close()
    assert saved["epoch"] == 1 and saved["position"]["batches"] == 2
    resumed = TrainFeed(pipeline(), steps_per_call=4, max_epochs=3)
    resumed.open(saved)
    chex.assert_trees_all_equal(taken + calls(resumed), expected)


def test_max_batches_ends_the_feed_where_max_steps_would():
    feed = TrainFeed(pipeline(), steps_per_call=4)
    feed.open(max_batches=10)
    assert [g.shape[0] for g in (b["x"] for b in calls(feed))] == [4, 4, 2]
    feed.close()
