"""Fixtures for the checkpoint package's tests: small real checkpoint files, written and damaged on demand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emergence.checkpoint import parse_name, write_checkpoint
from emergence.checkpoint.manifest import build_manifest


def _place(directory: Path, name: str, value: float = 0.0, metrics: dict | None = None) -> Path:
    """A valid checkpoint `directory/name` (its kind and step from the name) holding `{"w": [value] * 4}`."""
    directory.mkdir(parents=True, exist_ok=True)
    ref = parse_name(directory / name)
    manifest = build_manifest(
        step=ref.step,
        kind=ref.kind,
        reason="test",
        config={"lr": 0.1},
        callbacks={},
        metrics=metrics or {},
        typed_keys={},
    )
    write_checkpoint(ref.path, {"w": np.full(4, value, np.float32)}, manifest)
    return ref.path


def _damage(path: Path) -> Path:
    """Flip the last byte: the file still parses but no longer verifies."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def place():
    """`place(directory, name, value=0.0, metrics=None)`: write a small valid checkpoint; its path."""
    return _place


@pytest.fixture
def damage():
    """`damage(path)`: make a checkpoint fail verification (last byte flipped); the path."""
    return _damage


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes: to show a read changed nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def tree_snapshot():
    """`tree_snapshot(root)`: every file under `root` with its bytes."""
    return snapshot


@pytest.fixture
def victim(tmp_path):
    """A file outside any run dir holding "keep me": what a planted name or link must never reach."""
    path = tmp_path / "victim"
    path.write_text("keep me")
    return path
