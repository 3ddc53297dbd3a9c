"""Temp files of an atomic write have unpredictable names and are created exclusively, never through a link."""

from __future__ import annotations

import os

import pytest

from emergence.checkpoint import atomic
from emergence.checkpoint.atomic import TEMP_PREFIX, atomic_write_text


def test_two_writes_use_different_unpredictable_temp_names(tmp_path, monkeypatch):
    seen = []
    real_open = os.open

    def spy(path, flags, mode=0o777, **kwargs):
        seen.append((os.path.basename(path), flags))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(atomic.os, "open", spy)
    atomic_write_text(tmp_path / "a.json", "1", durable=False)
    atomic_write_text(tmp_path / "a.json", "2", durable=False)
    names = [name for name, _ in seen if name.startswith(TEMP_PREFIX)]
    assert len(set(names)) == 2 and all(len(name.rsplit(".", 1)[1]) == 16 for name in names)
    assert all(flags & os.O_EXCL and flags & os.O_NOFOLLOW for name, flags in seen if name.startswith(TEMP_PREFIX))
    assert (tmp_path / "a.json").read_text() == "2"


def test_a_link_planted_under_the_temp_name_is_never_written_through(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: "f" * (2 * n))
    planted = tmp_path / f"{TEMP_PREFIX}a.json.{os.getpid()}.{'f' * 16}"
    planted.symlink_to(victim)
    with pytest.raises(FileExistsError):
        atomic_write_text(tmp_path / "a.json", "evil")
    assert victim.read_text() == "keep me" and not (tmp_path / "a.json").exists()
    assert planted.is_symlink()  # what we did not create, we do not delete
