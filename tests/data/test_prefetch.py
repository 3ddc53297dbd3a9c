"""Prefetcher: K batches checked, stacked and placed on the device on a worker thread, each group with its position."""

from __future__ import annotations

import json
import threading
import time

import chex
import grain
import jax
import numpy as np
import pytest

from emergence.data import BatchChangedError, BatchSource, DataError, Prefetcher


def pipeline(n: int = 30, batch: int = 2) -> grain.MapDataset:
    return grain.MapDataset.range(n).shuffle(seed=1).map(lambda i: {"x": np.full((3,), i, np.float32)}).batch(batch)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "emergence-prefetch"]


def test_groups_of_k_are_stacked_on_the_device_and_the_last_group_is_what_is_left():
    with Prefetcher(BatchSource(pipeline(), max_epochs=1), steps_per_call=4) as groups:
        prepared = list(groups)
    assert [g.steps for g in prepared] == [4, 4, 4, 3]  # 15 batches of 2
    assert isinstance(prepared[0].batch["x"], jax.Array)
    assert prepared[0].batch["x"].shape == (4, 2, 3)
    assert prepared[-1].batch["x"].shape == (3, 2, 3)
    one = Prefetcher(BatchSource(pipeline(), max_epochs=1), steps_per_call=4, max_batches=5)
    assert [g.steps for g in one] == [4, 1]
    assert one.position["batches"] == 5


def test_a_group_of_one_is_the_batch_itself_unstacked():
    with Prefetcher(BatchSource(pipeline(), max_epochs=1)) as groups:
        assert next(groups).batch["x"].shape == (2, 3)


def test_the_position_saved_is_the_last_group_consumed_and_resumes_exactly_though_the_worker_runs_ahead():
    straight = [g.batch for g in Prefetcher(BatchSource(pipeline(), max_epochs=2), steps_per_call=3)]
    first = Prefetcher(BatchSource(pipeline(), max_epochs=2), steps_per_call=3, depth=4)
    consumed = [next(first).batch for _ in range(6)]  # 18 batches: into the second epoch
    time.sleep(0.2)  # the worker has prepared groups ahead by now
    saved = json.loads(json.dumps(first.position))
    first.close()
    assert saved["epoch"] == 1 and saved["batches"] == 3
    source = BatchSource(pipeline(), max_epochs=2)
    source.restore(saved)
    with Prefetcher(source, steps_per_call=3) as resumed:
        rest = [g.batch for g in resumed]
    chex.assert_trees_all_equal(consumed + rest, straight)


def test_an_exception_in_the_pipeline_is_raised_on_the_loop_thread_and_the_worker_ends():
    def broken(i):
        if i == 5:
            raise ValueError("image 5 is corrupt")
        return {"x": np.zeros(2, np.float32)}

    groups = Prefetcher(BatchSource(grain.MapDataset.range(10).map(broken), max_epochs=1), steps_per_call=2)
    with pytest.raises(ValueError, match="image 5 is corrupt"):
        list(groups)
    assert not prefetch_threads()


def test_close_mid_stream_stops_and_joins_the_worker_even_when_its_queue_is_full():
    groups = Prefetcher(BatchSource(pipeline()), steps_per_call=2, depth=1)  # infinite epochs
    next(groups)
    time.sleep(0.1)  # the worker is now blocked on the full queue
    groups.close()
    groups.close()
    assert not prefetch_threads()


def test_a_batch_whose_shape_changes_is_a_one_line_error_naming_the_leaf():
    ragged = [{"x": np.zeros((4, 3)), "y": np.zeros(4)}] * 2 + [{"x": np.zeros((3, 3)), "y": np.zeros(3)}]
    with pytest.raises(BatchChangedError) as err:
        list(Prefetcher(BatchSource(ragged, max_epochs=1)))
    message = str(err.value)
    assert "batch 3 of train_data differs from the first batch" in message
    assert "'x': shapes: (3, 3) != (4, 3)" in message or "(4, 3) != (3, 3)" in message
    assert "drop_remainder=True" in message and "\n" not in message


def test_a_batch_whose_structure_changes_or_holds_strings_is_refused():
    changed = [{"x": np.zeros(2)}, {"x": np.zeros(2), "extra": np.zeros(2)}]
    with pytest.raises(BatchChangedError, match="do not match"):
        list(Prefetcher(BatchSource(changed, max_epochs=1)))
    with pytest.raises(DataError, match="a str leaf of dtype <U5; batches are pytrees of numeric arrays"):
        list(Prefetcher(BatchSource([{"name": "hello"}], max_epochs=1)))


def test_host_time_is_hidden_behind_a_slower_device():
    def slow_read(i):
        time.sleep(0.002)
        return {"x": np.full((64,), i, np.float32)}

    data = grain.MapDataset.range(400).map(slow_read).to_iter_dataset()  # one reader thread: 2 ms a batch
    with Prefetcher(BatchSource(data, max_epochs=1), steps_per_call=5) as groups:
        for _ in groups:
            time.sleep(0.03)  # the 'device' takes 30 ms per call of 5 steps, the host 10 ms
        share = groups.hidden_share()
    assert share is not None and share > 0.8
