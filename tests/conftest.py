"""Shared fixtures: a read-only directory that really is read-only, even for root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def _make_read_only(path: Path) -> bool:
    if os.geteuid() != 0:
        path.chmod(0o555)
        return True
    bind = subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True)
    if bind.returncode != 0:
        return False
    probe = path / ".write-probe"
    try:
        probe.touch()
    except OSError:
        return True
    probe.unlink()
    subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
    return True


def _undo_read_only(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o755)
    else:
        subprocess.run(["umount", str(path)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A factory: `read_only_dir(path)` makes `path` read-only until the test ends."""
    made: list[Path] = []

    def make(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if not _make_read_only(path):
            pytest.skip("cannot make a read-only directory here (not root-capable of bind mounts)")
        made.append(path)
        return path

    yield make
    for path in reversed(made):
        _undo_read_only(path)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """W&B offline, its config and caches in the test's temp dir."""
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": tmp_path / "wb-config",
        "WANDB_CACHE_DIR": tmp_path / "wb-cache",
        "WANDB_DATA_DIR": tmp_path / "wb-data",
    }.items():
        monkeypatch.setenv(name, str(value))
