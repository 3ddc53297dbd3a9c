"""emergence.sums: what FinalizeCallback writes is what `emergence kaggle download` checks, odd names included."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from emergence.sums import ChecksumError, format_sums, read_sums, verify_sums


def test_sums_written_with_escaped_names_are_read_back_and_verified(tmp_path):
    names = ["plain.txt", "back\\slash.txt", "new\nline.txt"]
    for name in names:
        (tmp_path / name).write_text(name)
    (tmp_path / "SHA256SUMS").write_text(format_sums(tmp_path, names))
    assert [name for _, name in read_sums(tmp_path / "SHA256SUMS")] == names
    assert verify_sums(tmp_path / "SHA256SUMS") == 3
    if shutil.which("sha256sum"):
        done = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_malformed_line_is_one_line_naming_the_file_and_line(tmp_path):
    (tmp_path / "SHA256SUMS").write_text("not a digest  file.txt\n")
    with pytest.raises(ChecksumError, match=r"SHA256SUMS:1 is not '<sha256>  <file>'; re-download the output$"):
        verify_sums(tmp_path / "SHA256SUMS")


def test_a_changed_file_is_one_line_saying_download_again(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"before")
    (tmp_path / "SHA256SUMS").write_text(format_sums(tmp_path, ["a.bin"]))
    (tmp_path / "a.bin").write_bytes(b"after!")
    with pytest.raises(ChecksumError, match="a.bin does not match its SHA256SUMS entry.*download again$"):
        verify_sums(tmp_path / "SHA256SUMS")


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "a/../../b"])
def test_a_name_outside_the_download_is_refused_before_any_file_is_read(tmp_path, name):
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {name}\n")
    with pytest.raises(ChecksumError, match="outside the download; this listing cannot be trusted"):
        verify_sums(tmp_path / "SHA256SUMS")


def test_an_empty_listing_proves_nothing(tmp_path):
    (tmp_path / "SHA256SUMS").write_text("\n")
    with pytest.raises(ChecksumError, match="lists no file, so it proves nothing"):
        verify_sums(tmp_path / "SHA256SUMS")


def test_a_listed_symlink_out_of_the_download_is_refused(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (download := tmp_path / "download").mkdir()
    (download / "link.txt").symlink_to(outside)
    (download / "SHA256SUMS").write_text(format_sums(download, ["link.txt"]))
    with pytest.raises(ChecksumError, match="link out of the download"):
        verify_sums(download / "SHA256SUMS")
