"""`emergence ckpt` on a dangling or looping symlink: one line, never a traceback (issue 19, item 8)."""

from __future__ import annotations

import pytest

from emergence.cli import main


@pytest.mark.parametrize("command", ["list", "inspect", "verify"])
def test_a_dangling_or_looping_symlink_is_one_line(tmp_path, capsys, command):
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for link in ("dangling", "loop"):
        assert main(["ckpt", command, str(tmp_path / link)]) != 0
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err and "a symlink that leads nowhere" in err


def test_links_inside_a_checkpoint_dir_are_skipped_with_a_warning(tmp_path, capsys, caplog):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "step_5.safetensors").symlink_to(tmp_path / "missing")
    (folder / "step_6.safetensors").symlink_to(folder / "step_6.safetensors")
    assert main(["ckpt", "list", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    assert "no checkpoints in" in out and "Traceback" not in err
    assert caplog.text.count("a symlink that does not lead to a checkpoint file") == 2
