"""A damaged file is "damaged, skipped": its header is checked against its size before any allocation,
and no parse failure of a header or manifest (deep nesting, wrong types) escapes as anything but corrupt."""

from __future__ import annotations

import json
import struct
import time

import numpy as np
import pytest

from emergence.checkpoint import load_newest_valid, read_checkpoint, read_manifest, write_checkpoint
from emergence.checkpoint.format import CHECKSUM_KEY, MANIFEST_KEY
from emergence.errors import CorruptCheckpointError

ARRAYS = {"w": np.arange(64, dtype=np.float32)}


def _good(path, step=1):
    write_checkpoint(path, ARRAYS, {"step": step, "kind": "periodic"})
    return path


def _with_header(path, header: dict, data: bytes = b""):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_a_file_larger_than_its_header_says_is_refused_without_allocating_its_tail(tmp_path):
    path = _good(tmp_path / "step_2.safetensors", step=2)
    with open(path, "r+b") as handle:
        handle.truncate(200 * 2**30)  # a sparse 200 GiB tail: costs no disk, must cost no memory
    started = time.perf_counter()
    with pytest.raises(CorruptCheckpointError, match="the table says 256"):
        read_checkpoint(path)
    assert time.perf_counter() - started < 5


def test_resume_skips_the_oversized_file_and_loads_the_good_one(tmp_path):
    _good(tmp_path / "step_1.safetensors", step=1)
    big = _good(tmp_path / "step_2.safetensors", step=2)
    with open(big, "r+b") as handle:
        handle.truncate(200 * 2**30)
    assert int(load_newest_valid(tmp_path).manifest["step"]) == 1


def test_a_deeply_nested_header_is_corrupt_not_a_recursion_error(tmp_path):
    raw = b"[" * 200_000 + b"]" * 200_000
    path = tmp_path / "step_3.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(CorruptCheckpointError):
        read_checkpoint(path)


def test_a_deeply_nested_manifest_is_corrupt_not_a_recursion_error(tmp_path):
    manifest = "[" * 200_000 + "]" * 200_000
    path = _with_header(tmp_path / "step_4.safetensors", {"__metadata__": {MANIFEST_KEY: manifest, CHECKSUM_KEY: "x"}})
    with pytest.raises(CorruptCheckpointError, match="manifest is not valid JSON"):
        read_manifest(path)


WRONG = [("7", "periodic"), (True, "periodic"), (-1, "periodic"), (3, 5), (None, "periodic")]


@pytest.mark.parametrize("step, kind", WRONG)
def test_a_manifest_whose_step_or_kind_has_the_wrong_type_is_corrupt(tmp_path, step, kind):
    manifest = json.dumps({"format_version": 2, "step": step, "kind": kind})
    path = _with_header(tmp_path / "step_5.safetensors", {"__metadata__": {MANIFEST_KEY: manifest, CHECKSUM_KEY: "x"}})
    with pytest.raises(CorruptCheckpointError, match="not a step and a kind"):
        read_manifest(path)


@pytest.mark.parametrize("offsets", [["a", "b"], [0], None, [0, -8], [0, True]])
def test_a_malformed_tensor_table_is_corrupt(tmp_path, offsets):
    good = read_manifest(_good(tmp_path / "ref.safetensors"))
    metadata = {MANIFEST_KEY: json.dumps(good), CHECKSUM_KEY: "x"}
    table = {"w": {"dtype": "F32", "shape": [64], "data_offsets": offsets}, "__metadata__": metadata}
    path = _with_header(tmp_path / "step_6.safetensors", table, b"\0" * 256)
    with pytest.raises(CorruptCheckpointError):
        read_checkpoint(path)
