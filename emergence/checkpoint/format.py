"""The checkpoint file: safetensors arrays plus a JSON manifest and a checksum.

Layout (plain safetensors, readable by `safetensors.numpy.load_file`): an 8-byte
little-endian header length, a JSON header naming each tensor's dtype, shape and byte
range, then the raw bytes. The header's `__metadata__` holds two strings:
`emergence` (the manifest: step, kind, config, callback state, ...) and
`emergence_checksum`, a digest over the tensor table, the manifest and the bytes.
Nothing in a checkpoint can run code when loaded: pickle is never involved.

Format versions (the manifest's `format_version`) differ only in the digest:
1 is SHA-256 (`sha256:<hex>`, ~1.3-1.7 GB/s on one core: slower than a fast disk),
2 is BLAKE3 (`blake3:<hex>`, ~6 GB/s on one core, more with `max_threads`), so the
checksum no longer bounds write and read speed. New files are version 2; version 1
files still load and verify with SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import blake3
import numpy as np

from emergence.checkpoint import direct
from emergence.checkpoint.atomic import atomic_write
from emergence.errors import CheckpointNotFoundError, CorruptCheckpointError

FORMAT_VERSION = 2
MANIFEST_KEY = "emergence"
CHECKSUM_KEY = "emergence_checksum"
MAX_HEADER_BYTES = 100 * 1024 * 1024
READ_BLOCK = 16 * 1024 * 1024
DIGESTS = {1: "sha256", 2: "blake3"}  # format version -> digest; every version here still reads


def _hash_threads() -> int:
    """Threads one BLAKE3 update may use: half the cores this process may run on (the other half do the I/O).

    One thread already hashes ~6 GB/s, faster than most disks; on two busy cores a second
    hash thread only competes with the read or write it should hide behind (measured:
    cold read + verify 0.91 ± 0.07x a raw read with one thread, 0.82 ± 0.33x with two).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores // 2))


HASH_THREADS = _hash_threads()

_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint64": "U64",
    "uint32": "U32",
    "uint16": "U16",
    "uint8": "U8",
    "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}
_NUMPY_DTYPES = {code: name for name, code in _DTYPES.items()}


@dataclass(frozen=True)
class CheckpointFile:
    """A verified checkpoint read into host memory."""

    path: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    checksum: str


def _numpy_dtype(code: str) -> np.dtype:
    import ml_dtypes  # noqa: F401  (registers bfloat16 and float8 with numpy)

    return np.dtype(_NUMPY_DTYPES[code])


def _tensor_table(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    table, offset = {}, 0
    for name in sorted(arrays):
        array = arrays[name]
        code = _DTYPES.get(array.dtype.name)
        if code is None:
            raise TypeError(f"leaf '{name}' has dtype {array.dtype}, which safetensors cannot store")
        table[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    return table


def _digest(version: int) -> Any:
    """A fresh hash object for format `version`: SHA-256 for 1, multi-threaded BLAKE3 for 2."""
    if DIGESTS[version] == "sha256":
        return hashlib.sha256()
    return blake3.blake3(max_threads=HASH_THREADS)


def _placeholder(version: int) -> str:
    """A checksum-shaped string as long as every real checksum of `version` (both digests are 32 bytes)."""
    return f"{DIGESTS[version]}:" + "0" * 64


class _Hasher:
    """The checkpoint's digest, fed piece by piece and computed on a helper thread while the caller does I/O.

    Covers the tensor table, the manifest, then the pieces in the order they are
    `add`ed (both digests and file I/O release the GIL, so hashing overlaps reading and
    writing). A piece must stay unchanged until `checksum()`. The helper thread starts
    with the first piece and stops at `checksum()` or `close()`. When no thread may start
    (a save from an atexit handler, at interpreter exit) pieces are hashed on the
    calling thread instead, still in order.
    """

    def __init__(self, table: dict, manifest_json: str, version: int = FORMAT_VERSION) -> None:
        self._name = DIGESTS[version]
        self._sha = _digest(version)
        self._sha.update(json.dumps(table, sort_keys=True).encode())
        self._sha.update(manifest_json.encode())
        self._pool: ThreadPoolExecutor | None = None
        self._queued: list[Future] = []

    def add(self, piece: memoryview) -> None:
        try:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emergence-checkpoint-hash")
            self._queued.append(self._pool.submit(self._sha.update, piece))
        except RuntimeError:  # "cannot schedule new futures after interpreter shutdown"
            self._drain()
            self._sha.update(piece)

    def _drain(self) -> None:
        for future in self._queued:
            future.result()
        self._queued = []

    def close(self) -> None:
        """Wait for the pieces queued and stop the helper thread (safe to call twice)."""
        self._drain()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def checksum(self) -> str:
        self.close()
        return f"{self._name}:{self._sha.hexdigest()}"


def _header_bytes(table: dict, manifest_json: str, checksum: str) -> bytes:
    header = dict(table)
    header["__metadata__"] = {MANIFEST_KEY: manifest_json, CHECKSUM_KEY: checksum}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def write_checkpoint(
    path: Path | str,
    arrays: dict[str, np.ndarray],
    manifest: dict[str, Any],
    *,
    format_version: int = FORMAT_VERSION,
    check: Callable[[], None] | None = None,
) -> str:
    """Atomically write `arrays` and `manifest` to `path`; return the checksum.

    The checksum sits in the header, at the front of the file, but hashing and writing
    run at the same time (the digests and file writes release the GIL): the header is
    written with a placeholder of the same length, the data follows while another thread
    hashes it, and the real header overwrites the placeholder before the fsync. Files of
    `direct.MIN_BYTES` or more are written with direct I/O where the filesystem allows
    (`direct.py`: the same bytes for less CPU), else buffered.
    `format_version=1` writes the old SHA-256 format (for tests and comparisons).
    `check` (e.g. a scan for NaN) runs on a helper thread while the bytes are written; if
    it raises, the write is abandoned before the rename (no file appears) and its error
    propagates.
    """
    if format_version not in DIGESTS:
        raise ValueError(f"format_version must be one of {sorted(DIGESTS)}, got {format_version!r}")
    arrays = {name: np.require(a, requirements="C") for name, a in arrays.items()}
    table = _tensor_table(arrays)
    manifest_json = json.dumps({**manifest, "format_version": format_version}, sort_keys=True)
    chunks = [memoryview(arrays[name].reshape(-1).view(np.uint8)) for name in table]
    placeholder = _header_bytes(table, manifest_json, _placeholder(format_version))
    checksum = ""

    def write(handle: BinaryIO) -> None:
        nonlocal checksum
        with _beside(check) as checked:
            write_data(handle)
            checked()

    def write_data(handle: BinaryIO) -> None:
        nonlocal checksum
        hasher = _Hasher(table, manifest_json, format_version)
        for chunk in chunks:
            hasher.add(chunk)
        pieces = [memoryview(placeholder), *chunks]
        large = sum(len(chunk) for chunk in chunks) >= direct.MIN_BYTES
        written_directly = large and direct.write_direct(handle, pieces)
        if not written_directly:
            handle.seek(0)
            for piece in pieces:
                handle.write(piece)
        checksum = hasher.checksum()
        header = _header_bytes(table, manifest_json, checksum)
        assert len(header) == len(placeholder), "the checksum changed the header's length"
        if written_directly:
            direct.rewrite_head(handle, pieces, header)
        else:
            handle.seek(0)
            handle.write(header)

    atomic_write(path, write)
    return checksum


@contextlib.contextmanager
def _beside(check: Callable[[], None] | None) -> Iterator[Callable[[], None]]:
    """Run `check` on a helper thread for the duration; yields a function that waits for it (raising its error)."""
    if check is None:
        yield lambda: None
        return
    try:
        pool: ThreadPoolExecutor | None = ThreadPoolExecutor(1, thread_name_prefix="emergence-checkpoint-check")
        future = pool.submit(check)
    except RuntimeError:  # at interpreter exit: check on this thread when asked
        pool, future = None, None
    try:
        yield (lambda: future.result()) if future is not None else check
    finally:
        if pool is not None:
            pool.shutdown(wait=False)


def _bad(path: Path, why: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(f"{path}: {why}")


def _read_header(path: Path, handle: BinaryIO, size: int) -> tuple[dict, int]:
    prefix = handle.read(8)
    length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else None
    # A pickle starts with 0x80; so does a valid header length whose low byte is 0x80 (1 in 32).
    looks_pickled = prefix[:1] == b"\x80" and (length is None or length > size - 8)
    if looks_pickled or path.suffix in {".pkl", ".pickle", ".pt", ".pth", ".ckpt"}:
        raise _bad(
            path,
            "looks like a pickle file, which emergence never loads (it can run code); "
            "point at an emergence .safetensors checkpoint",
        )
    if length is None:
        raise _bad(path, "too short to be a checkpoint (truncated or empty); resume from another one")
    if length > min(size - 8, MAX_HEADER_BYTES):
        raise _bad(path, "not a safetensors checkpoint, or truncated (header length beyond the file)")
    try:
        header = json.loads(handle.read(length))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _bad(path, "header is not valid JSON: corrupt, or not a checkpoint; resume from another one") from None
    if not isinstance(header, dict):
        raise _bad(path, "header is not a safetensors table; not a checkpoint")
    return header, 8 + length


def _manifest(path: Path, header: dict) -> tuple[dict[str, Any], str, str]:
    """The manifest, its JSON text and the stored checksum; anything malformed is a `CorruptCheckpointError`."""
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or MANIFEST_KEY not in metadata or CHECKSUM_KEY not in metadata:
        raise _bad(path, "a safetensors file without an emergence manifest; not an emergence checkpoint")
    manifest_json, checksum = metadata[MANIFEST_KEY], metadata[CHECKSUM_KEY]
    try:
        manifest = json.loads(manifest_json) if isinstance(manifest_json, str) else None
    except (json.JSONDecodeError, RecursionError):
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(checksum, str):
        raise _bad(path, "manifest is not valid JSON: corrupt; resume from another checkpoint")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in DIGESTS:
        raise _bad(
            path,
            f"checkpoint format {version!r} is not one this emergence reads "
            f"({min(DIGESTS)}..{FORMAT_VERSION}); upgrade emergence to load it",
        )
    step, kind = manifest.get("step", 0), manifest.get("kind", "")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0 or not isinstance(kind, str):
        raise _bad(path, f"manifest step {step!r} / kind {kind!r} are not a step and a kind: corrupt; skip it")
    return manifest, manifest_json, checksum


def read_manifest(path: Path | str) -> dict[str, Any]:
    """The manifest alone, without reading or verifying the arrays (cheap)."""
    path = Path(path)
    with _open(path) as handle:
        header, _ = _read_header(path, handle, path.stat().st_size)
    return _manifest(path, header)[0]


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file") from None
    except IsADirectoryError:
        raise CheckpointNotFoundError(f"{path} is a directory; pass a checkpoint file") from None


def read_checkpoint(path: Path | str) -> CheckpointFile:
    """Read and verify a checkpoint (any format version); any damage is a `CorruptCheckpointError`.

    The data is hashed block by block on a helper thread while the next block is read,
    when the tensors lie in the file in name order, back to back (as every file
    `write_checkpoint` writes does); otherwise it is hashed tensor by tensor after reading.
    Files of `direct.MIN_BYTES` or more are read with direct I/O where the filesystem allows.
    """
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    with _open(path) as handle:
        header, data_start = _read_header(path, handle, size)
        manifest, manifest_json, checksum = _manifest(path, header)
        table = {k: v for k, v in header.items() if k != "__metadata__"}
        hasher = _Hasher(table, manifest_json, manifest["format_version"])
        try:
            arrays = _read_verified(path, handle, table, (data_start, size), hasher)
        finally:
            hasher.close()
    if hasher.checksum() != checksum:
        raise _bad(path, "checksum mismatch (corrupt or truncated); delete it or resume from another checkpoint")
    return CheckpointFile(path=path, manifest=manifest, arrays=arrays, checksum=checksum)


def _read_verified(path: Path, handle: BinaryIO, table: dict, span: tuple[int, int], hasher: _Hasher) -> dict:
    """Read the data (file bytes `span`) while `hasher` digests it in tensor name order; the arrays viewing it.

    Large files whose tensors lie in name order are read with direct I/O into the
    buffer the arrays keep (`direct.read_direct`); the others, and filesystems without
    direct I/O, through the page cache.
    """
    start, size = span
    if (extent := _extent(path, table)) != size - start:  # before allocating: a sparse tail must not cost memory
        raise _bad(path, f"data is {size - start} bytes, the table says {extent} (truncated or corrupt)")
    in_file_order = _in_file_order(table, size - start)
    data = None
    if in_file_order and size - start >= direct.MIN_BYTES and direct.available():
        data = direct.read_direct(path, size, start, hasher.add)
    if data is None:
        data = bytearray(size - start)
        got = _read_into(handle, data, hasher if in_file_order else None)
    else:
        got = len(data)
    if got != size - start:
        raise _bad(path, "truncated while reading; resume from another checkpoint")
    arrays = _arrays(path, table, data)
    if not in_file_order:
        for name in sorted(table):
            hasher.add(memoryview(data)[slice(*table[name]["data_offsets"])])
    return arrays


def _in_file_order(table: dict, size: int) -> bool:
    """The tensors, in name order, tile the data exactly: hashing the data as read is hashing them in order."""
    end = 0
    try:
        for name in sorted(table):
            begin, stop = table[name]["data_offsets"]
            if begin != end:
                return False
            end = stop
    except (KeyError, TypeError, ValueError):
        return False
    return end == size


def _read_into(handle: BinaryIO, data: bytearray, hasher: _Hasher | None) -> int:
    """Fill `data` from `handle` block by block, handing each block to `hasher`; the bytes read."""
    view, done = memoryview(data), 0
    while done < len(data):
        got = handle.readinto(view[done : done + READ_BLOCK])
        if not got:
            break
        if hasher is not None:
            hasher.add(view[done : done + got])
        done += got
    return done


def _extent(path: Path, table: dict) -> int:
    """Where the table says the data ends (the largest tensor end offset); a malformed table is corrupt."""
    try:
        ends = [entry["data_offsets"][1] for entry in table.values()]
        if not all(isinstance(end, int) and not isinstance(end, bool) and end >= 0 for end in ends):
            raise TypeError
    except (KeyError, TypeError, IndexError):
        raise _bad(path, "tensor table is malformed (corrupt); resume from another checkpoint") from None
    return max(ends, default=0)


def _arrays(path: Path, table: dict, data: bytearray | memoryview) -> dict[str, np.ndarray]:
    arrays = {}
    try:
        for name, entry in table.items():
            begin, stop = entry["data_offsets"]
            dtype = _numpy_dtype(entry["dtype"])
            arrays[name] = np.frombuffer(
                data, dtype=dtype, count=(stop - begin) // dtype.itemsize, offset=begin
            ).reshape(tuple(entry["shape"]))
    except (KeyError, ValueError, TypeError):
        raise _bad(path, "tensor table does not match the data (corrupt or truncated)") from None
    return arrays
