"""What the export callbacks write about a run: the output dir, the latest checkpoint, JSON files.

Shared by `ArtifactExportCallback` (progress.json) and `FinalizeCallback` (summary.json),
which never import each other.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emergence.checkpoint.atomic import atomic_write_text
from emergence.errors import RunDirError

if TYPE_CHECKING:
    from emergence.checkpoint import CheckpointRef
    from emergence.trainer import Trainer


def output_dir(trainer: "Trainer", chosen: str | os.PathLike | None, owner: str) -> Path:
    """`chosen`, or the run dir; created if missing. Fails fast, before training, if it cannot be written."""
    path = Path(chosen) if chosen is not None else Path(trainer.run_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise RunDirError(
            f"{owner}: output_dir {path} is not writable ({err.strerror or err}); pass a writable output_dir"
        ) from None
    return path


def latest_checkpoint(trainer: "Trainer", root: Path) -> dict[str, Any] | None:
    """The newest checkpoint this run has (written in this session, else resumed from), as JSON."""
    ref: CheckpointRef | None = trainer.last_checkpoint or trainer.resumed_from
    if ref is None:
        return None
    path = Path(ref.path)
    try:
        shown = str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        shown = str(path)
    return {"path": shown, "kind": ref.kind, "step": ref.step, "checksum": ref.checksum}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """`data` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
