"""BatchSource: batches from lists, generators and Grain, epochs, and a position that resumes exactly."""

from __future__ import annotations

import json
import logging

import chex
import grain
import numpy as np
import pytest

from emergence.data import START, BatchSource, DataError, DataResumeError
from emergence.data.source import own_shard


def batches(n: int, size: int = 4) -> list[dict[str, np.ndarray]]:
    return [{"x": np.full((size, 3), i, np.float32), "y": np.full((size,), i, np.int32)} for i in range(n)]


def images(n: int = 24, batch: int = 4) -> grain.MapDataset:
    """A shuffled, augmented, batched Grain pipeline over in-memory 'images'."""
    pixels = np.arange(n * 8 * 8, dtype=np.uint8).reshape(n, 8, 8)
    labels = np.arange(n, dtype=np.int32)
    return (
        grain.MapDataset.source(range(n))
        .shuffle(seed=7)
        .map(lambda i: {"image": pixels[i].astype(np.float32) / 255.0, "label": labels[i]})
        .batch(batch, drop_remainder=True)
    )


def read(source: BatchSource, count: int) -> list:
    return [next(source) for _ in range(count)]


def test_a_list_is_read_in_order_epoch_after_epoch_until_max_epochs():
    source = BatchSource(batches(3), max_epochs=2)
    labels = [int(batch["y"][0]) for batch in source]
    assert labels == [0, 1, 2, 0, 1, 2]
    assert source.epoch == 2


def test_a_grain_map_dataset_is_reshuffled_each_epoch_and_each_epoch_is_a_permutation():
    source = BatchSource(images(), max_epochs=2)
    epochs = [np.concatenate([b["label"] for b in read(source, 6)]) for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(24))
    assert not np.array_equal(epochs[0], epochs[1])
    with pytest.raises(StopIteration):
        next(source)


@pytest.mark.parametrize("consumed", [0, 1, 5, 6, 7, 11])
def test_a_grain_position_resumes_exactly_mid_epoch_and_across_the_epoch_boundary(consumed, caplog):
    straight = BatchSource(images(), max_epochs=3)
    expected = read(straight, 18)
    first = BatchSource(images(), max_epochs=3)
    read(first, consumed)
    position = json.loads(json.dumps(first.position()))  # what a manifest keeps
    resumed = BatchSource(images(), max_epochs=3)
    with caplog.at_level(logging.WARNING, logger="emergence"):
        resumed.restore(position)
    chex.assert_trees_all_equal(list(resumed), expected[consumed:])
    assert "discarding" not in caplog.text  # Grain resumes from its own state, without re-reading


def test_a_grain_iter_dataset_and_a_data_loader_resume_from_their_own_state():
    source_ds = grain.MapDataset.range(40).map(lambda i: {"x": np.full((2,), i, np.int32)})
    loader = grain.DataLoader(
        data_source=[{"x": np.full((2,), i, np.int32)} for i in range(40)],
        sampler=grain.samplers.IndexSampler(
            40, shard_options=grain.sharding.NoSharding(), shuffle=True, seed=3, num_epochs=1
        ),
        operations=[grain.transforms.Batch(4)],
        worker_count=0,
    )
    for data in (source_ds.to_iter_dataset().batch(4), loader):
        expected = list(BatchSource(data, max_epochs=1))
        first = BatchSource(data, max_epochs=1)
        read(first, 3)
        position = json.loads(json.dumps(first.position()))
        assert position["iterator"] is not None
        resumed = BatchSource(data, max_epochs=1)
        resumed.restore(position)
        chex.assert_trees_all_equal(list(resumed), expected[3:])


def test_a_list_resumes_by_discarding_what_was_read_with_a_one_line_warning(caplog):
    expected = list(BatchSource(batches(5), max_epochs=2))
    first = BatchSource(batches(5), max_epochs=2)
    read(first, 7)
    resumed = BatchSource(batches(5), max_epochs=2)
    with caplog.at_level(logging.WARNING, logger="emergence"):
        resumed.restore(first.position())
    chex.assert_trees_all_equal(list(resumed), expected[7:])
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "re-reading and discarding the 2 batches already read in epoch 1" in warning
    assert "\n" not in warning


def test_a_generator_is_read_once_and_refused_on_resume_mid_stream():
    source = BatchSource(iter(batches(3)))
    assert len(list(source)) == 3
    fresh = BatchSource(b for b in batches(3))
    fresh.restore(START)  # nothing read yet: nothing to refuse
    with pytest.raises(
        DataResumeError,
        match=r"one-shot iterator .* cannot be re-read to resume at batch 2 of epoch 0; pass a re-iterable",
    ) as err:
        BatchSource(b for b in batches(3)).restore({"epoch": 0, "batches": 2, "iterator": None})
    assert "\n" not in str(err.value)


def test_a_generator_ends_after_one_epoch_with_a_warning_when_more_were_asked(caplog):
    source = BatchSource((b for b in batches(2)), max_epochs=3)
    with caplog.at_level(logging.WARNING, logger="emergence"):
        assert len(list(source)) == 2
    assert "one-shot iterator: it ended after 1 epoch(s) of max_epochs=3" in caplog.text


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ([], {}, "train_data yielded no batch; pass data with at least one batch"),
        ("abc", {}, "train_data must be an iterable of batches"),
        (batches(2), {"max_epochs": 0}, "max_epochs must be a positive integer or None, got 0"),
    ],
)
def test_unusable_data_is_a_one_line_error(data, kwargs, message):
    with pytest.raises(DataError, match=message):
        next(BatchSource(data, **kwargs))


def test_a_position_the_data_cannot_reach_is_refused():
    short = BatchSource(batches(2))
    with pytest.raises(DataResumeError, match="has only 2 batches in epoch 0 but the checkpoint had read 4"):
        short.restore({"epoch": 0, "batches": 4, "iterator": None})
    grain_position = BatchSource(images())
    read(grain_position, 1)
    with pytest.raises(DataResumeError, match="holds an iterator state but train_data's iterator .* has no set_state"):
        BatchSource(batches(3)).restore(grain_position.position())


class OpaqueState:
    """An iterable whose iterator's state is an object (JSON cannot hold it)."""

    def __iter__(self):
        return self.Iterator()

    class Iterator:
        def __next__(self):
            return {"x": np.zeros(2)}

        def get_state(self):
            return object()

        def set_state(self, state):
            pass


def test_an_iterator_state_that_is_not_json_is_a_one_line_error_never_a_pickle():
    source = BatchSource(OpaqueState())
    next(source)
    with pytest.raises(
        DataError, match=r"get_state\(\) returned a object that is not JSON-able; .*\(pickle is never loaded"
    ):
        source.position()


def test_each_process_reads_its_own_shard_of_a_grain_dataset_or_a_list():
    assert [int(b["y"][0]) for b in own_shard(batches(6), 1, 2)] == [1, 3, 5]
    dataset = grain.MapDataset.range(6)
    assert list(own_shard(dataset, 0, 3)) == [0, 3]
    source = BatchSource(batches(6), max_epochs=1, process=(0, 2))
    assert [int(b["y"][0]) for b in source] == [0, 2, 4]
