"""Checkpoint fuzzing: thousands of damaged copies of a real checkpoint, every one refused in one line.

A checkpoint of a small but real TrainState (params, Adam moments, a typed PRNG key, a
bf16 leaf) is mutated in every way a disk, a download or a careless edit damages a
file: truncation, bit flips in the header and in the data, a rewritten header length,
dtype/shape/offset edits to the tensor table, manifest edits that keep the old
checksum, byte insertions and deletions. The contract for each mutant: reading it
raises `CorruptCheckpointError` with a one-line message, or it loads equal to the
original (only possible when the edit left its meaning unchanged, e.g. JSON key order).
Any other exception, a multi-line message or a load that differs fails the test.

The default suite runs ~5,000 mutants (~6-15 s on the 2-core box); `-m slow` runs ~65,000 more.
"""

from __future__ import annotations

import json
import random
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
import pytest

from emergence.checkpoint import flatten_to_host, read_checkpoint, write_checkpoint
from emergence.checkpoint.format import CHECKSUM_KEY, MANIFEST_KEY, CheckpointFile
from emergence.errors import CorruptCheckpointError
from emergence.state import TrainState

V1_FIXTURE = Path(__file__).parents[1] / "fixtures" / "checkpoint_v1.safetensors"
DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL", "F8_E4M3", "X")

Mutant = tuple[str, bytes]


def _real_checkpoint(path: Path) -> bytes:
    """A checkpoint of a small MLP's TrainState with Adam, written the way the Trainer writes one."""
    params = {
        "dense": {"kernel": jax.random.normal(jax.random.key(0), (8, 4)), "bias": jnp.zeros(4)},
        "half": jnp.linspace(-1, 1, 6).astype(jnp.bfloat16),
    }
    state = TrainState.create(params, optax.adam(1e-3).init(params), jax.random.key(7))
    arrays, typed = flatten_to_host(state)
    write_checkpoint(
        path,
        arrays,
        {
            "step": 12,
            "kind": "periodic",
            "reason": "periodic",
            "typed_keys": typed,
            "config": {"lr": 0.001, "layers": [8, 4]},
            "metrics": {"loss": 0.5},
        },
    )
    return path.read_bytes()


def _split(raw: bytes) -> tuple[int, dict, bytes]:
    (length,) = struct.unpack("<Q", raw[:8])
    return length, json.loads(raw[8 : 8 + length]), raw[8 + length :]


def _join(header: dict, data: bytes, pad_to: int | None = None) -> bytes:
    """A file from a header dict and data; padded with spaces to `pad_to` bytes when it fits (so offsets stay)."""
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad_to is not None and len(text) <= pad_to:
        text += b" " * (pad_to - len(text))
    return struct.pack("<Q", len(text)) + text + data


def truncations(raw: bytes, rng: random.Random, every: int) -> Iterator[Mutant]:
    """Every length inside the header and the first data bytes, then every `every`-th length, plus random ones."""
    length = _split(raw)[0]
    cuts = set(range(0, min(len(raw), 8 + length + 64))) | set(range(0, len(raw), every))
    cuts |= {rng.randrange(len(raw)) for _ in range(50)}
    for cut in sorted(cuts):
        yield f"truncate to {cut}", raw[:cut]
    yield "append a byte", raw + b"\0"
    yield "append a block", raw + bytes(4096)


def bit_flips(raw: bytes, rng: random.Random, header_flips: int, data_flips: int) -> Iterator[Mutant]:
    """Single-bit flips at random positions: `header_flips` in the length and header, `data_flips` in the data."""
    length = _split(raw)[0]
    spans = [(0, 8 + length, header_flips), (8 + length, len(raw), data_flips)]
    for begin, end, count in spans:
        for _ in range(count):
            index, bit = rng.randrange(begin, end), rng.randrange(8)
            mutant = bytearray(raw)
            mutant[index] ^= 1 << bit
            yield f"flip bit {bit} of byte {index}", bytes(mutant)


def byte_edits(raw: bytes, rng: random.Random, count: int) -> Iterator[Mutant]:
    """Random overwrites, insertions and deletions of 1-16 bytes anywhere."""
    for _ in range(count):
        index, size = rng.randrange(len(raw)), rng.randint(1, 16)
        junk = bytes(rng.randrange(256) for _ in range(size))
        how = rng.choice(["overwrite", "insert", "delete"])
        if how == "overwrite":
            yield f"overwrite {size} at {index}", raw[:index] + junk + raw[index + size :]
        elif how == "insert":
            yield f"insert {size} at {index}", raw[:index] + junk + raw[index:]
        else:
            yield f"delete {size} at {index}", raw[:index] + raw[index + size :]


def header_lengths(raw: bytes, rng: random.Random) -> Iterator[Mutant]:
    """The 8-byte header length rewritten: near the true value, zero, huge, and random."""
    length = _split(raw)[0]
    values = set(range(max(0, length - 40), length + 41)) | {0, 1, 2**31, 2**63, 2**64 - 1, len(raw), len(raw) - 8}
    values |= {rng.randrange(2**64) for _ in range(20)} | {rng.randrange(len(raw)) for _ in range(40)}
    for value in sorted(values - {length}):
        yield f"header length {value}", struct.pack("<Q", value) + raw[8:]


def _table_edits(entry: dict, others: list[dict]) -> Iterator[tuple[str, dict]]:
    begin, stop = entry["data_offsets"]
    shape = entry["shape"]
    for code in DTYPES:
        if code != entry["dtype"]:
            yield f"dtype {code}", {**entry, "dtype": code}
    shapes = [[*shape, 1], shape[:-1], [s + 1 for s in shape], [0, *shape], [-1], "x", None, [1.5]]
    if len(shape) > 1:
        shapes.append(list(reversed(shape)))
    for new in shapes:
        if new != shape:
            yield f"shape {new}", {**entry, "shape": new}
    offsets = [
        [begin + 1, stop],
        [begin, stop - 1],
        [begin, stop + 1],
        [begin - 1, stop - 1],
        [begin + 2, stop + 2],
        [stop, begin],
        [0, stop - begin],
        [begin],
        [begin, stop, stop],
        "0",
        [str(begin), stop],
        [-1, stop],
    ]
    offsets += [o["data_offsets"] for o in others if o["data_offsets"] != entry["data_offsets"]][:3]
    for new in offsets:
        yield f"offsets {new}", {**entry, "data_offsets": new}
    yield "entry dropped keys", {"dtype": entry["dtype"]}
    yield "entry is a list", [entry["dtype"], shape]


def table_edits(raw: bytes) -> Iterator[Mutant]:
    """dtype, shape and data-offset edits to each tensor, dropped and renamed tensors; the old checksum kept."""
    length, header, data = _split(raw)
    names = [name for name in header if name != "__metadata__"]
    for name in names:
        others = [header[other] for other in names if other != name]
        for what, entry in _table_edits(header[name], others):
            yield f"{name}: {what}", _join({**header, name: entry}, data, length)
        yield f"{name}: removed", _join({k: v for k, v in header.items() if k != name}, data, length)
        renamed = {(f"{name}_" if k == name else k): v for k, v in header.items()}
        yield f"{name}: renamed", _join(renamed, data, length)
    extra = {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}
    yield "extra tensor", _join({**header, "extra": extra}, data, length)


def _manifest_edits(manifest: dict) -> Iterator[tuple[str, dict | str]]:
    for version in (1, 3, 0, -1, "2", 2.0, True, None, [2]):
        yield f"format_version {version!r}", {**manifest, "format_version": version}
    yield "no format_version", {k: v for k, v in manifest.items() if k != "format_version"}
    yield "step + 1", {**manifest, "step": manifest["step"] + 1}
    yield "kind final", {**manifest, "kind": "final"}
    yield "config lr", {**manifest, "config": {**manifest.get("config", {}), "lr": 0.01}}
    yield "metric", {**manifest, "metrics": {"loss": 0.25}}
    yield "typed key dropped", {**manifest, "typed_keys": {}}
    yield "extra key", {**manifest, "note": "edited"}
    for text in ("[1, 2]", "not json", "", "null", "{}", '"text"'):
        yield f"manifest text {text!r}", text


def manifest_edits(raw: bytes) -> Iterator[Mutant]:
    """Manifest and checksum edits that keep the header otherwise intact (the old checksum kept)."""
    length, header, data = _split(raw)
    metadata = header["__metadata__"]
    manifest = json.loads(metadata[MANIFEST_KEY])
    for what, new in _manifest_edits(manifest):
        text = new if isinstance(new, str) else json.dumps(new, sort_keys=True)
        yield f"manifest {what}", _join({**header, "__metadata__": {**metadata, MANIFEST_KEY: text}}, data, length)
    checksum = metadata[CHECKSUM_KEY]
    algorithm, digest = checksum.split(":")
    other = "sha256" if algorithm == "blake3" else "blake3"
    flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    for new in (f"{other}:{digest}", f"{algorithm}:{flipped}", f"{algorithm}:", "", digest, 7, None, checksum.upper()):
        yield f"checksum {new!r}", _join({**header, "__metadata__": {**metadata, CHECKSUM_KEY: new}}, data, length)
    for metadata_value in ({}, [], "x", None, {MANIFEST_KEY: metadata[MANIFEST_KEY]}, {CHECKSUM_KEY: checksum}):
        yield f"__metadata__ {metadata_value!r}", _join({**header, "__metadata__": metadata_value}, data, length)
    yield "header is a list", _join([1, 2], data, length)  # type: ignore[arg-type]


def same_meaning(raw: bytes) -> Iterator[Mutant]:
    """Edits that keep the header's meaning (key order, whitespace): these may load, and must load equal."""
    length, header, data = _split(raw)
    reordered = dict(reversed(list(header.items())))
    yield "header keys reversed", _join(reordered, data, length)
    yield "header indented", _join_text(json.dumps(header, indent=1).encode(), data, length)


def _join_text(text: bytes, data: bytes, pad_to: int) -> bytes:
    text = text if len(text) > pad_to else text + b" " * (pad_to - len(text))
    return struct.pack("<Q", len(text)) + text + data


def _same(loaded: CheckpointFile, original: CheckpointFile) -> bool:
    if loaded.manifest != original.manifest or set(loaded.arrays) != set(original.arrays):
        return False
    return all(
        a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        for a, b in ((loaded.arrays[n], original.arrays[n]) for n in original.arrays)
    )


def fuzz(original: Path, mutants: Iterator[Mutant], work: Path) -> Counter:
    """Read every mutant; count refusals and equal loads; fail on anything else."""
    expected = read_checkpoint(original)
    raw = original.read_bytes()
    outcomes: Counter = Counter()
    path = work / original.name
    for what, mutant in mutants:
        path.write_bytes(mutant)
        try:
            loaded = read_checkpoint(path)
        except CorruptCheckpointError as err:
            assert "\n" not in str(err), f"{what}: a multi-line error: {err!r}"
            assert str(err).startswith(str(path)), f"{what}: the error does not name the file: {err}"
            outcomes["refused"] += 1
            continue
        except Exception as err:  # noqa: BLE001 (the point: nothing else may escape)
            pytest.fail(f"{what}: {type(err).__name__} escaped instead of CorruptCheckpointError: {err}")
        assert _same(loaded, expected), f"{what}: a changed file loaded with different content"
        outcomes["unchanged bytes" if mutant == raw else "loaded equal"] += 1  # an edit that was a no-op
    return outcomes


def run_all(tmp_path: Path, original: Path, families: dict[str, Callable[[], Iterator[Mutant]]]) -> Counter:
    """Fuzz with every family, print the counts and the time (`pytest -s` shows them)."""
    total: Counter = Counter()
    started = time.perf_counter()
    for name, family in families.items():
        outcomes = fuzz(original, family(), tmp_path)
        print(f"{name}: {dict(outcomes)}")
        total.update(outcomes)
    print(
        f"checkpoint fuzz: {sum(total.values())} mutants of {original.name} "
        f"in {time.perf_counter() - started:.1f} s: {dict(total)}"
    )
    return total


def _families(raw: bytes, seed: int, scale: int) -> dict[str, Callable[[], Iterator[Mutant]]]:
    rng = random.Random(seed)
    return {
        "truncation": lambda: truncations(raw, rng, every=max(1, 64 // scale)),
        "bit flips": lambda: bit_flips(raw, rng, header_flips=600 * scale, data_flips=600 * scale),
        "byte edits": lambda: byte_edits(raw, rng, count=300 * scale),
        "header length": lambda: header_lengths(raw, rng),
        "tensor table": lambda: table_edits(raw),
        "manifest": lambda: manifest_edits(raw),
        "same meaning": lambda: same_meaning(raw),
    }


def test_thousands_of_damaged_checkpoints_are_each_refused_in_one_line(tmp_path):
    original = tmp_path / "step_12.safetensors"
    raw = _real_checkpoint(original)
    (tmp_path / "mutants").mkdir()
    total = run_all(tmp_path / "mutants", original, _families(raw, seed=0, scale=1))
    assert total["refused"] >= 3000
    assert total["loaded equal"] == 2  # the two same-meaning edits, and nothing else


def test_damaged_copies_of_a_format_1_file_are_refused_too(tmp_path):
    original = tmp_path / "step_3.safetensors"
    original.write_bytes(V1_FIXTURE.read_bytes())
    (tmp_path / "mutants").mkdir()
    raw, rng = original.read_bytes(), random.Random(1)
    families = {
        "truncation": lambda: truncations(raw, rng, every=1),
        "bit flips": lambda: bit_flips(raw, rng, header_flips=300, data_flips=300),
        "tensor table": lambda: table_edits(raw),
        "manifest": lambda: manifest_edits(raw),
    }
    total = run_all(tmp_path / "mutants", original, families)
    assert total["refused"] >= 1500 and total["loaded equal"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_many_more_damaged_checkpoints_are_each_refused_in_one_line(tmp_path, seed):
    original = tmp_path / "step_12.safetensors"
    raw = _real_checkpoint(original)
    (tmp_path / "mutants").mkdir()
    total = run_all(tmp_path / "mutants", original, _families(raw, seed=seed, scale=20))
    assert total["refused"] >= 30000 and total["loaded equal"] == 2
