"""The notebook's install cell installs only what it was told to: a wheel from the one named dataset with
internet off, else the pinned commit with internet on; anything else is one line and installs nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notebook_kit import INSTALL, NOTEBOOK

SHA = "0123456789abcdef0123456789abcdef01234567"


def _install_cell() -> str:
    import nbformat

    code = [cell for cell in nbformat.read(NOTEBOOK, as_version=4).cells if cell.cell_type == "code"]
    return code[INSTALL].source


def _run(tmp_path: Path, monkeypatch, *, online: bool, **values) -> list[list[str]]:
    """Execute the install cell as a fresh session would (emergence not importable); the pip calls it made."""
    calls: list[list[str]] = []

    def fake_run(args, check=False, **kwargs):
        calls.append(list(args[4:]))  # after `python -m pip install`
        return subprocess.CompletedProcess(args, 0)

    def connect(address, timeout=None):
        if not online:
            raise OSError("network is unreachable")
        return socket.socket()

    monkeypatch.setenv("EMERGENCE_FORCE_INSTALL", "1")
    monkeypatch.setattr(socket, "create_connection", connect)
    fake_subprocess = type(sys)("subprocess")
    fake_subprocess.run, fake_subprocess.CalledProcessError = fake_run, subprocess.CalledProcessError
    source = _install_cell()
    for name, value in values.items():  # what a user edits in the cell
        source = source.replace(f"{name} = ", f"{name} = {value!r}  # ", 1) if name == "WHEEL_DATASET" else source
    if "REF" in values:
        source = source.replace('"0" * 40', repr(values["REF"]), 1)
    namespace = {
        "os": os,
        "sys": sys,
        "subprocess": fake_subprocess,
        "KAGGLE_ROOT": tmp_path,
        "ACCELERATOR": "cpu",
        "jax_backend": lambda: "cpu",
    }
    exec(compile(source, "install-cell", "exec"), namespace)
    return calls


def _wheel(tmp_path: Path, dataset: str) -> Path:
    folder = tmp_path / "input" / dataset
    folder.mkdir(parents=True)
    (wheel := folder / "emergence-0.1.0-py3-none-any.whl").write_bytes(b"")
    return wheel


def test_internet_off_installs_the_wheel_of_the_named_dataset_only(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path, "my-wheels")
    _wheel(tmp_path, "someone-elses")
    calls = _run(tmp_path, monkeypatch, online=False, WHEEL_DATASET="my-wheels")
    assert calls == [["--quiet", "--no-index", "--find-links", str(wheel.parent), str(wheel)]]


def test_internet_on_installs_the_pinned_commit_and_never_a_wheel(tmp_path, monkeypatch):
    _wheel(tmp_path, "attached")
    calls = _run(tmp_path, monkeypatch, online=True, REF=SHA)
    assert calls == [["--quiet", f"git+https://github.com/YOUR_NAME/emergence@{SHA}"]]


@pytest.mark.parametrize(
    "online, values, says",
    [
        (True, {"WHEEL_DATASET": "my-wheels"}, "internet is on: install the pinned commit"),
        (False, {}, "internet is off: attach a dataset holding an emergence-\\*.whl"),
        (False, {"WHEEL_DATASET": "missing"}, "no emergence-\\*.whl in"),
        (True, {"REF": "main"}, "REF='main' must be a full commit SHA"),
    ],
)
def test_anything_else_is_one_line_and_installs_nothing(tmp_path, monkeypatch, online, values, says):
    _wheel(tmp_path, "my-wheels")
    with pytest.raises(RuntimeError, match=says):
        _run(tmp_path, monkeypatch, online=online, **values)
