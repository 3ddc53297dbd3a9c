"""SHA256SUMS: the one place that hashes files and writes, reads and checks `sha256sum -c` listings.

A finished run writes `SHA256SUMS` next to its outputs (`FinalizeCallback`); a download
of those outputs (`emergence kaggle download`) checks it. Both go through this module,
so what one writes the other reads: the GNU coreutils format, `<hex>  <name>`, with a
name holding a backslash or newline escaped and the line starting with `\\`, as
`sha256sum` itself does. Loads no JAX.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from emergence.errors import EmergenceError

SUMS_FILE = "SHA256SUMS"
_BLOCK = 1 << 20
_LINE = re.compile(r"^(?P<escaped>\\?)(?P<digest>[0-9a-fA-F]{64}) [ *](?P<name>.+)$")


class ChecksumError(EmergenceError):
    """A SHA256SUMS listing that cannot be read, or a file that does not match it."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (a multi-GiB checkpoint never sits in memory whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def sums_line(digest: str, name: str) -> str:
    """One listing line for `name` (a relative POSIX path), escaped the way `sha256sum` escapes it."""
    escaped = name.replace("\\", "\\\\").replace("\n", "\\n")
    flag = "\\" if escaped != name else ""
    return f"{flag}{digest}  {escaped}\n"


def format_sums(root: Path, files: Iterable[Path]) -> str:
    """The SHA256SUMS text for `files`, given relative to `root`, in the order given."""
    return "".join(sums_line(sha256_file(Path(root) / relative), Path(relative).as_posix()) for relative in files)


def _unescape(name: str) -> str:
    out, chars = [], iter(name)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append("\n" if following == "n" else following)
        else:
            out.append(char)
    return "".join(out)


def read_sums(sums_file: Path) -> list[tuple[str, str]]:
    """`(hex digest, relative name)` for every line of a SHA256SUMS file; a malformed line is a `ChecksumError`."""
    entries = []
    for number, line in enumerate(Path(sums_file).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ChecksumError(f"{sums_file}:{number} is not '<sha256>  <file>'; re-download the output")
        name = _unescape(match.group("name")) if match.group("escaped") else match.group("name")
        _check_confined(sums_file, number, name)
        entries.append((match.group("digest").lower(), name))
    return entries


def _check_confined(sums_file: Path, number: int, name: str) -> None:
    """A listed name is a relative path inside the listing's folder: no absolute path, no `..`."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ChecksumError(
            f"{sums_file}:{number} names {name!r}, outside the download; this listing cannot be trusted: re-download"
        )


def verify_sums(sums_file: Path) -> int:
    """Check every file `sums_file` lists (paths relative to it, kept inside its folder); return how many.

    A mismatch, a name or link reaching outside the folder, or an empty listing is one line.
    """
    sums_file = Path(sums_file)
    entries = read_sums(sums_file)
    if not entries:
        raise ChecksumError(f"{sums_file} lists no file, so it proves nothing; re-download the output")
    root = sums_file.parent.resolve()
    for digest, name in entries:
        target = sums_file.parent / name
        if not target.resolve().is_relative_to(root):
            raise ChecksumError(f"{target} is a link out of the download; re-download the output")
        if not target.is_file():
            raise ChecksumError(f"{target} is listed in {sums_file.name} but was not downloaded; download again")
        if sha256_file(target) != digest:
            raise ChecksumError(
                f"{target} does not match its SHA256SUMS entry: the download is damaged; download again"
            )
    return len(entries)
