"""A run's lineage: which checkpoint files belong to this run, so rotation and discovery count only those.

The rule (a run id, not a config-hash chain: a config may change on resume, an id does not):

- A fresh start draws a new run id (`new_run_id`: UTC time and 8 random hex digits) and
  writes it in `<run_dir>/checkpoints/run.json`; every manifest the manager writes carries
  it as `run_id`. A resume carries the resumed file's run id on (also into a new run dir,
  e.g. a Kaggle session resuming the previous session's output).
- A file **belongs** to the run when its manifest's `run_id` is the run's. A file written
  before lineage existed has no `run_id`: it is adopted (it belongs to whichever run reads
  it), so old run dirs keep resuming and rotating as before.
- Rotation offers a keep policy only files that belong; a foreign file is never deleted.
  `resume="auto"` skips a foreign file in a run dir that has a run id, with a warning that
  names both runs; to take it over, resume it by path.

`run.json` is read, never trusted as a path: it only holds an id.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emergence.checkpoint.atomic import atomic_write_text

RUN_FILE = "run.json"
RUN_ID_KEY = "run_id"
_MAX_BYTES = 4096


def new_run_id() -> str:
    """A fresh run id: sortable by start time, unique by 8 random hex digits (`20261207T164000Z-1a2b3c4d`)."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"


def run_id_of(manifest: Mapping[str, Any]) -> str | None:
    """The run id a manifest records, or None (written before lineage, or not a string)."""
    value = manifest.get(RUN_ID_KEY)
    return value if isinstance(value, str) and value else None


def belongs(manifest: Mapping[str, Any], run_id: str | None) -> bool:
    """Does a file with this manifest belong to run `run_id`? (No run yet, or no id in the file: it does.)"""
    return same_run(run_id_of(manifest), run_id)


def same_run(owner: str | None, run_id: str | None) -> bool:
    """A file of run `owner` (None: written before lineage) belongs to run `run_id` (None: any run)."""
    return run_id is None or owner is None or owner == run_id


def recorded_run_id(checkpoint_dir: Path | str) -> str | None:
    """The run id `<checkpoint_dir>/run.json` records, or None (absent, a link, unreadable, not an id)."""
    path = Path(checkpoint_dir) / RUN_FILE
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        record = json.loads(os.read(fd, _MAX_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return run_id_of(record) if isinstance(record, dict) else None


def record_run_id(checkpoint_dir: Path | str, run_id: str) -> None:
    """Write `run_id` to `<checkpoint_dir>/run.json` (atomically, durably): this dir now belongs to that run."""
    record = {RUN_ID_KEY: run_id, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_text(Path(checkpoint_dir) / RUN_FILE, json.dumps(record) + "\n")
