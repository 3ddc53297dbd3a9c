"""The checkpoint file: round trips, safetensors compatibility, and every kind of damage."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from emergence.checkpoint import flatten_to_host, read_checkpoint, read_manifest, unflatten_into, write_checkpoint
from emergence.checkpoint.format import FORMAT_VERSION
from emergence.cli import main as emergence_main
from emergence.errors import CheckpointNotFoundError, CorruptCheckpointError, IncompatibleCheckpointError


def _tree():
    return {
        "w": jnp.arange(12, dtype=jnp.float32).reshape(3, 4),
        "half": jnp.linspace(-2, 2, 5).astype(jnp.bfloat16),
        "count": jnp.asarray(7, jnp.int32),
        "flag": jnp.asarray([True, False]),
        "empty": jnp.zeros((0, 3)),
        "key": jax.random.key(42),
        "keys": jax.random.split(jax.random.key(1), 3),
    }


def _save(path, tree=None, manifest=None):
    arrays, typed = flatten_to_host(tree if tree is not None else _tree())
    return write_checkpoint(path, arrays, {"step": 3, "kind": "periodic", "typed_keys": typed, **(manifest or {})})


def test_round_trip_is_bitwise_with_bf16_and_typed_keys(tmp_path):
    path = tmp_path / "step_3.safetensors"
    checksum = _save(path)
    loaded = read_checkpoint(path)
    assert loaded.checksum == checksum and loaded.manifest["step"] == 3
    restored = unflatten_into(_tree(), loaded.arrays, loaded.manifest["typed_keys"])
    assert restored["half"].dtype == jnp.bfloat16
    assert jnp.issubdtype(restored["key"].dtype, jax.dtypes.prng_key)
    for original, back in zip(jax.tree.leaves(_tree()), jax.tree.leaves(restored)):
        if jnp.issubdtype(original.dtype, jax.dtypes.prng_key):
            original, back = jax.random.key_data(original), jax.random.key_data(back)
        assert original.shape == back.shape and original.dtype == back.dtype
        assert np.array_equal(np.asarray(original), np.asarray(back))
    assert jax.random.uniform(restored["key"]) == jax.random.uniform(_tree()["key"])


def test_a_checkpoint_written_from_jax_arrays_loads_with_numpy_only(tmp_path):
    path = tmp_path / "step_1.safetensors"
    tree = {"params": {"w": jnp.ones((2, 3))}, "step": jnp.asarray(1, jnp.int32), "rng": jax.random.key(0)}
    _save(path, tree)
    arrays = load_file(str(path))
    assert set(arrays) == {"params/w", "step", "rng"}
    assert np.array_equal(arrays["params/w"], np.ones((2, 3), np.float32))
    assert arrays["rng"].dtype == np.uint32 and arrays["rng"].shape == (2,)


V1_FIXTURE = Path(__file__).parents[1] / "fixtures" / "checkpoint_v1.safetensors"  # written by format v1's code


def _assert_equal_to_tree(loaded):
    restored = unflatten_into(_tree(), loaded.arrays, loaded.manifest["typed_keys"])
    for original, back in zip(jax.tree.leaves(_tree()), jax.tree.leaves(restored)):
        if jnp.issubdtype(original.dtype, jax.dtypes.prng_key):
            original, back = jax.random.key_data(original), jax.random.key_data(back)
        assert original.dtype == back.dtype and np.array_equal(np.asarray(original), np.asarray(back))


def test_new_files_are_format_2_with_a_blake3_checksum(tmp_path):
    path = tmp_path / "step_3.safetensors"
    checksum = _save(path)
    assert FORMAT_VERSION == 2 and checksum.startswith("blake3:") and len(checksum) == len("blake3:") + 64
    assert read_manifest(path)["format_version"] == 2


def test_a_format_1_file_from_the_old_code_still_loads_and_verifies():
    loaded = read_checkpoint(V1_FIXTURE)
    assert loaded.manifest["format_version"] == 1 and loaded.checksum.startswith("sha256:")
    _assert_equal_to_tree(loaded)


def test_a_damaged_format_1_file_is_still_refused(tmp_path):
    data = bytearray(V1_FIXTURE.read_bytes())
    data[-3] ^= 0x10
    path = tmp_path / "step_3.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        read_checkpoint(path)


def test_format_1_can_still_be_written_and_both_versions_hash_the_same_content(tmp_path):
    arrays, typed = flatten_to_host(_tree())
    manifest = {"step": 3, "kind": "periodic", "typed_keys": typed}
    old = write_checkpoint(tmp_path / "v1.safetensors", arrays, manifest, format_version=1)
    new = write_checkpoint(tmp_path / "v2.safetensors", arrays, manifest)
    assert old.startswith("sha256:") and new.startswith("blake3:")
    for name in ("v1", "v2"):
        _assert_equal_to_tree(read_checkpoint(tmp_path / f"{name}.safetensors"))
    with pytest.raises(ValueError, match="format_version"):
        write_checkpoint(tmp_path / "v3.safetensors", arrays, manifest, format_version=3)


def test_a_version_edit_that_swaps_the_digest_is_refused(tmp_path):
    path = tmp_path / "step_3.safetensors"
    _save(path)
    raw = path.read_bytes().replace(b'\\"format_version\\": 2', b'\\"format_version\\": 1')
    path.write_bytes(raw)
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        read_checkpoint(path)


def test_ckpt_verify_reports_each_file_format_version(tmp_path, capsys):
    (tmp_path / "step_1.safetensors").write_bytes(V1_FIXTURE.read_bytes())
    _save(tmp_path / "step_3.safetensors")
    assert emergence_main(["ckpt", "verify", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ok   step_1.safetensors (step 3, periodic, format v1 sha256)"
    assert lines[1] == "ok   step_3.safetensors (step 3, periodic, format v2 blake3)"


def test_manifest_reads_without_the_arrays(tmp_path):
    path = tmp_path / "step_3.safetensors"
    _save(path, manifest={"config": {"lr": 0.1}})
    assert read_manifest(path)["config"] == {"lr": 0.1}


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "step_3.safetensors"
    _save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        read_checkpoint(path)


@pytest.mark.parametrize("where", ["data", "header"])
def test_one_flipped_byte_is_caught(tmp_path, where):
    path = tmp_path / "step_3.safetensors"
    _save(path)
    data = bytearray(path.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    index = len(data) - 3 if where == "data" else 8 + data[8 : 8 + header_len].index(b'"step') + 2
    data[index] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError):
        read_checkpoint(path)


def test_a_pickle_file_is_never_loaded(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(CorruptCheckpointError, match="pickle"):
        read_checkpoint(path)


def test_plain_safetensors_without_manifest_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": np.ones(3, np.float32)}, str(path))
    with pytest.raises(CorruptCheckpointError, match="not an emergence checkpoint"):
        read_checkpoint(path)


def test_unknown_format_version_says_upgrade(tmp_path):
    path = tmp_path / "step_3.safetensors"
    arrays, _ = flatten_to_host({"w": jnp.ones(2)})
    write_checkpoint(path, arrays, {"step": 3})
    stored = f'\\"format_version\\": {FORMAT_VERSION}'.encode()
    assert stored in path.read_bytes()
    raw = path.read_bytes().replace(stored, b'\\"format_version\\": 9')
    path.write_bytes(raw)
    with pytest.raises(CorruptCheckpointError, match="upgrade emergence"):
        read_checkpoint(path)


def test_missing_file_and_directory_get_clear_errors(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointNotFoundError, match="is a directory"):
        read_checkpoint(tmp_path)


def test_shape_mismatch_names_the_leaf_and_both_shapes(tmp_path):
    path = tmp_path / "step_3.safetensors"
    _save(path, {"params": {"dense": {"kernel": jnp.ones((4, 8))}}})
    loaded = read_checkpoint(path)
    with pytest.raises(IncompatibleCheckpointError, match=r"params/dense/kernel.*float32\[4, 16\].*float32\[4, 8\]"):
        unflatten_into({"params": {"dense": {"kernel": jnp.ones((4, 16))}}}, loaded.arrays, {})


def test_dtype_and_structure_mismatches_name_the_leaf(tmp_path):
    path = tmp_path / "step_3.safetensors"
    _save(path, {"a": jnp.ones(3), "b": jnp.ones(2)})
    loaded = read_checkpoint(path)
    with pytest.raises(IncompatibleCheckpointError, match=r"leaf 'a'.*bfloat16.*float32"):
        unflatten_into({"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2)}, loaded.arrays, {})
    with pytest.raises(IncompatibleCheckpointError, match="leaf 'c'"):
        unflatten_into({"a": jnp.ones(3), "c": jnp.ones(2)}, loaded.arrays, {})


def test_unstorable_dtype_is_refused_before_touching_disk(tmp_path):
    path = tmp_path / "step_3.safetensors"
    _save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="leaf 'bad'"):
        write_checkpoint(path, {"bad": np.array(["text"])}, {"step": 4})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["step_3.safetensors"]


def _large_arrays():
    rng = np.random.default_rng(0)
    arrays = {f"layer_{i}": rng.standard_normal(1_000_003 + i, dtype=np.float32) for i in range(5)}
    arrays["z_tail"] = np.arange(5, dtype=np.int8)  # the file ends off the 4 KiB alignment
    return arrays


def _assert_round_trip(path, arrays):
    loaded = read_checkpoint(path)
    chex.assert_trees_all_equal(loaded.arrays, arrays, strict=True)
    chex.assert_trees_all_equal(load_file(str(path)), arrays, strict=True)  # still an ordinary safetensors file


def test_a_large_checkpoint_goes_through_direct_io_and_reuses_its_staging_buffers(tmp_path, monkeypatch):
    from emergence.checkpoint import direct

    if not direct.available():
        pytest.skip("no O_DIRECT on this platform")
    taken = []
    real_take = direct._take_buffers
    monkeypatch.setattr(direct, "_take_buffers", lambda: taken.append(real_take()) or taken[-1])
    arrays = _large_arrays()
    assert sum(a.nbytes for a in arrays.values()) >= direct.MIN_BYTES
    for name in ("step_1.safetensors", "step_2.safetensors"):
        write_checkpoint(tmp_path / name, arrays, {"step": 1})
        _assert_round_trip(tmp_path / name, arrays)
    if taken:  # this filesystem took direct I/O (tmpfs on older kernels does not)
        assert len(taken) == 2 and [id(b) for b in taken[0]] == [id(b) for b in taken[1]]  # reused


def test_where_direct_io_is_refused_the_same_file_is_written_buffered(tmp_path, monkeypatch):
    from emergence.checkpoint import direct

    arrays = _large_arrays()
    monkeypatch.setattr(direct, "_set_direct", lambda fd, on: False)
    write_checkpoint(tmp_path / "refused.safetensors", arrays, {"step": 1})
    _assert_round_trip(tmp_path / "refused.safetensors", arrays)


def test_a_mid_write_einval_from_direct_io_starts_over_buffered(tmp_path, monkeypatch):
    import errno
    import os

    from emergence.checkpoint import direct

    if not direct.available():
        pytest.skip("no O_DIRECT on this platform")
    calls = {"n": 0}
    real_pwrite = os.pwrite

    def flaky(fd, data, offset):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", flaky)
    arrays = _large_arrays()
    write_checkpoint(tmp_path / "einval.safetensors", arrays, {"step": 1})
    _assert_round_trip(tmp_path / "einval.safetensors", arrays)


def test_a_disk_error_during_direct_io_leaves_no_file_and_the_old_one_intact(tmp_path, monkeypatch):
    import errno
    import os

    arrays = _large_arrays()
    path = tmp_path / "step_1.safetensors"
    write_checkpoint(path, arrays, {"step": 1})
    before = path.read_bytes()

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OSError, match="No space"):
        write_checkpoint(path, arrays, {"step": 2})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["step_1.safetensors"]


def test_large_files_read_directly_still_catch_truncation_and_flipped_bits(tmp_path):
    arrays = _large_arrays()
    path = tmp_path / "step_1.safetensors"
    write_checkpoint(path, arrays, {"step": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4097])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        read_checkpoint(path)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(flipped))
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        read_checkpoint(path)


def test_where_direct_reads_are_refused_the_file_is_read_through_the_page_cache(tmp_path, monkeypatch):
    import errno
    import os

    arrays = _large_arrays()
    path = tmp_path / "step_1.safetensors"
    write_checkpoint(path, arrays, {"step": 1})
    real_open = os.open

    def no_direct(file, flags, *args, **kwargs):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_direct)
    _assert_round_trip(path, arrays)


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_check_that_fails_beside_the_write_leaves_no_file(tmp_path, size):
    arrays = _large_arrays() if size == "large" else {"w": np.ones(3, np.float32)}
    path = tmp_path / "step_1.safetensors"

    def refuse():
        raise ValueError("refused by the check")

    with pytest.raises(ValueError, match="refused by the check"):
        write_checkpoint(path, arrays, {"step": 1}, check=refuse)
    assert list(tmp_path.iterdir()) == []
    ran = []
    write_checkpoint(path, arrays, {"step": 1}, check=lambda: ran.append(True))
    assert ran == [True] and read_checkpoint(path).manifest["step"] == 1
