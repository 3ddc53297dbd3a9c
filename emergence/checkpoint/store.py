"""A directory of checkpoints: names, the `latest` pointer and rotation (discovery: `discovery.py`).

Files are named by kind and step (`step_<N>`, `best_step_<N>`, `emergency_step_<N>`,
`final_step_<N>`, each `.safetensors`). `latest.json` names the newest one for people
and tools; it is a plain file, so it survives zipping and download. Discovery does not
trust it (see `discovery.py`).

A `final` save at the step of a periodic (or best) file this run just wrote holds the
same arrays: `link_checkpoint` gives that file its second name (`final_step_<N>` is a
hard link of `step_<N>`: one inode, the disk holds the bytes once; `ckpt list` shows
both names, each with the full size, and the final's manifest is the periodic's). On a
filesystem without hard links no second file is written and `latest.json` points at the
periodic one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from emergence.checkpoint.atomic import TEMP_PREFIX, atomic_write_text, fsync_dir

log = logging.getLogger("emergence.checkpoint")

KINDS = ("periodic", "best", "emergency", "final")
SUFFIX = ".safetensors"
LATEST = "latest.json"
_PREFIXES = {"periodic": "step_", "best": "best_step_", "emergency": "emergency_step_", "final": "final_step_"}
_NAME = re.compile(r"^(best_step_|emergency_step_|final_step_|step_)(\d+)\.safetensors$")
_PRIORITY = {"final": 3, "emergency": 2, "periodic": 1, "best": 0}


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint file known by its name: where it is, its kind and step."""

    path: Path
    kind: str
    step: int
    checksum: str | None = None

    @property
    def order(self) -> tuple[int, int]:
        """Newer first: by step, then final > emergency > periodic > best."""
        return self.step, _PRIORITY[self.kind]


def checkpoint_name(kind: str, step: int) -> str:
    """The file name for a checkpoint of `kind` at `step`."""
    if kind not in _PREFIXES:
        raise ValueError(f"unknown checkpoint kind {kind!r}; use one of {', '.join(KINDS)}")
    return f"{_PREFIXES[kind]}{step}{SUFFIX}"


def parse_name(path: Path) -> CheckpointRef | None:
    """The ref a file name stands for, or None for files that are not checkpoints."""
    match = _NAME.match(path.name)
    if not match:
        return None
    kind = next(k for k, p in _PREFIXES.items() if p == match.group(1))
    return CheckpointRef(path=path, kind=kind, step=int(match.group(2)))


def list_checkpoints(directory: Path | str) -> list[CheckpointRef]:
    """Every checkpoint-named file in `directory`, oldest first; a symlink leading out of `directory` is left out.

    A link that dangles, loops or points elsewhere is never followed (a warning names it):
    whatever is listed here may be read, rotated or moved aside, and none of that may reach
    a file outside the directory.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    refs = [ref for p in directory.iterdir() if (ref := parse_name(p)) is not None and _stays_inside(p, directory)]
    return sorted(refs, key=lambda r: r.order)


def _stays_inside(path: Path, directory: Path) -> bool:
    """`path` is not a symlink, or one whose target is an existing file in `directory` itself."""
    if not path.is_symlink():
        return True
    try:
        target = path.resolve(strict=True)
        inside = target.parent == directory.resolve(strict=True) and target.is_file()
    except (OSError, RuntimeError):  # dangling, or a loop
        inside = False
    if not inside:
        log.warning("ignoring %s: a symlink that does not lead to a checkpoint file in %s", path.name, directory)
    return inside


def write_latest(directory: Path, ref: CheckpointRef, reason: str | None = None) -> None:
    """Point `latest.json` at `ref`: atomically (never torn), not fsync'd (discovery never trusts it, it scans).

    `reason` is why the save was made (`time_budget`, `max_steps`, ...): for a final save
    that is a hard link of the periodic file of its step, the file's own manifest keeps
    the periodic save's reason, so this is where the final's is written down.
    """
    pointer = {"name": ref.path.name, "kind": ref.kind, "step": ref.step, "checksum": ref.checksum, "reason": reason}
    atomic_write_text(directory / LATEST, json.dumps(pointer, indent=1) + "\n", durable=False)


def link_checkpoint(source: CheckpointRef, target: CheckpointRef) -> CheckpointRef:
    """`target` as a hard link of `source`'s durable file; `source` itself where hard links are not possible.

    Atomic like a write: the link is made under a temp name, renamed over `target`, and
    the directory fsync'd. Raises `OSError` when `source` is gone.
    """
    temp = target.path.with_name(f"{TEMP_PREFIX}{target.path.name}.{os.getpid()}.{secrets.token_hex(8)}")
    try:
        os.link(source.path, temp)  # fails on an existing name: a planted file is never replaced
    except OSError as err:
        if not source.path.exists():
            raise
        log.info("no hard link for %s here (%s): latest.json points at %s", target.path.name, err, source.path.name)
        return source
    os.replace(temp, target.path)
    fsync_dir(target.path.parent)
    return CheckpointRef(target.path, target.kind, target.step, source.checksum)


def delete_checkpoint(ref: CheckpointRef) -> None:
    """Remove one checkpoint file durably: the name rebuilt from its kind and step, in its own directory.

    A ref whose file name is not the one its kind and step make (a name read from a file,
    `/abs/victim`) deletes nothing; a symlink by that name is removed itself, never its target.
    """
    path = ref.path.parent / checkpoint_name(ref.kind, int(ref.step))
    if path != ref.path:
        log.warning("not deleting %s: not the name of a %s checkpoint of step %s", ref.path, ref.kind, ref.step)
        return
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


def rotate(directory: Path | str, keep_last: int) -> list[CheckpointRef]:
    """Delete the oldest `periodic` checkpoints beyond `keep_last`; return what went.

    Only periodic files are touched: best, emergency and final ones never are.
    """
    periodic = [r for r in list_checkpoints(directory) if r.kind == "periodic"]
    doomed = periodic[: max(0, len(periodic) - keep_last)]
    for ref in doomed:
        delete_checkpoint(ref)
    return doomed
