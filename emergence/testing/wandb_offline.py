"""Read what an offline W&B run wrote: its `.wandb` transaction log, record by record.

For tests that check what reached W&B without a server (`WANDB_MODE=offline`). The
file is W&B's transaction log: a 7-byte header (`:W&B`, magic, version), then records
framed as LevelDB's log format (32 KiB blocks; each chunk a CRC-32, a length, a type:
full, first, middle, last), each record a `wandb.proto.wandb_internal_pb2.Record`.
wandb 0.31 parses it only in its Go service, so the framing is read here and the
records with wandb's own protobuf classes. A torn tail (a killed writer) ends the read.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HEADER = b":W&B"
HEADER_LEN = 7
BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> Iterator[Any]:
    """The `Record` protobufs of a `.wandb` file, in order; stops at a torn or corrupt chunk."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != HEADER:
        raise ValueError(f"{path} is not a W&B transaction log (no ':W&B' header); pass a run-<id>.wandb file")
    position, pending = HEADER_LEN, b""
    while position + CHUNK_HEADER <= len(data):
        left = BLOCK - position % BLOCK
        if left < CHUNK_HEADER:
            position += left  # a block's zero trailer
            continue
        checksum, length, kind = struct.unpack("<IHB", data[position : position + CHUNK_HEADER])
        chunk = data[position + CHUNK_HEADER : position + CHUNK_HEADER + length]
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != checksum:
            return
        position += CHUNK_HEADER + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def history_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every logged row of a `.wandb` file (tag -> value, W&B's own `_step`, `_runtime` included), in order."""
    rows = []
    for record in read_records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return rows


def run_ids(path: str | Path) -> list[str]:
    """The run id(s) a `.wandb` file's run records name."""
    return [record.run.run_id for record in read_records(path) if record.WhichOneof("record_type") == "run"]


def config(path: str | Path) -> dict[str, Any]:
    """The run config as recorded in a `.wandb` file (later updates win)."""
    found: dict[str, Any] = {}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            found.update(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.config.update}
            )
        elif kind == "run":
            found.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
    return found


def summary(path: str | Path) -> dict[str, Any]:
    """The run summary as recorded in a `.wandb` file (later updates win)."""
    found: dict[str, Any] = {}
    for record in read_records(path):
        if record.WhichOneof("record_type") == "summary":
            found.update(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.summary.update}
            )
    return found
