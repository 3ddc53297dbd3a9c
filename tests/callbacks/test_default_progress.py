"""Feedback by default, where a person watches: a progress display is added unless the list has one or it is off."""

from __future__ import annotations

import io

import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback, RichProgressCallback
from emergence.trainer import with_default_progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(callbacks):
    return [cb for cb in callbacks if isinstance(cb, RichProgressCallback)]


def test_a_terminal_gets_a_progress_display_by_default(monkeypatch):
    monkeypatch.setattr("sys.stdout", _Terminal())
    assert len(_progress(Trainer(callbacks=[CheckpointCallback(every_n_steps=5)]).callbacks)) == 1


def test_a_log_gets_none_by_default_and_one_when_asked(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert _progress(Trainer().callbacks) == []
    assert len(_progress(Trainer(progress=True).callbacks)) == 1


def test_the_users_own_display_is_kept_and_none_is_added(monkeypatch):
    monkeypatch.setattr("sys.stdout", _Terminal())
    mine = RichProgressCallback(every_n_seconds=5)
    assert _progress(Trainer(callbacks=[mine], progress=True).callbacks) == [mine]


def test_progress_false_adds_nothing_even_in_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout", _Terminal())
    assert _progress(Trainer(progress=False).callbacks) == []


def test_a_progress_flag_of_the_wrong_type_is_one_line():
    with pytest.raises(ValueError, match="progress must be True, False or 'auto', got 'yes'"):
        with_default_progress([], "yes")
