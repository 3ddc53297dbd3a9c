"""Atomic file replacement: a crash at any instant leaves the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def _temp_file(path: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """A new temp file beside `path`: an unpredictable name, created exclusively, never through a link.

    `O_EXCL | O_NOFOLLOW` means a file or symlink planted under the name (by another
    writer, or to redirect the write elsewhere) is an error, never written through.
    """
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
    fd = os.open(temp, _CREATE_NEW, 0o666)  # outside the try: a name we did not create is never unlinked
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle, temp
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def atomic_write(path: Path | str, write: Callable[[BinaryIO], None], *, durable: bool = True) -> None:
    """Write `path` via `write(handle)` to a temp file, fsync, rename, fsync the dir.

    On any error the temp file is removed and the previous `path`, if any, is intact.
    `durable=False` skips both fsyncs: readers still see the old file or the new one,
    never a torn one, but a power cut may bring the old one back. For files nothing
    trusts (`latest.json`: discovery scans), where two fsyncs (1-16 ms here) per save buy nothing.
    """
    path = Path(path)
    with _temp_file(path) as (handle, temp):
        write(handle)
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    if durable:
        fsync_dir(path.parent)


def atomic_write_bytes(path: Path | str, data: bytes, *, durable: bool = True) -> None:
    """`atomic_write` for a small payload already in memory."""
    atomic_write(path, lambda handle: handle.write(data), durable=durable)


def atomic_write_text(path: Path | str, text: str, *, durable: bool = True) -> None:
    """`atomic_write` for text (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete temp files a killed writer left behind; they are never loaded anyway."""
    removed = []
    for temp in directory.glob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            temp.unlink()
            removed.append(temp)
    return removed
