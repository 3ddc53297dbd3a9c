"""Parsing a command's arguments with tyro, with bad usage reported in one line.

Commands are dataclasses (a group's subcommands a `Union` of them) that tyro only
parses; the caller then runs the parsed object, outside the capture below.
tyro reports a parse error as a boxed, multi-line panel on stderr and exits with 2.
The `emergence` command promises one line per error, so `parse` captures that panel
and raises `UsageError` with its message condensed: the panel's title or first
section, plus the list of valid choices when tyro gives one. `--help` is untouched.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence
from typing import Any

import tyro

from emergence.errors import UsageError

_BORDERS = "│╭╮╰╯─ "
_HELP = "For full helptext"
_DROPPED = ("Argument helptext", _HELP)


def parse(target: Any, argv: Sequence[str], prog: str, **kwargs: Any) -> Any:
    """`tyro.cli(target, args=argv, prog=prog, **kwargs)`, raising `UsageError` (one line) on bad usage."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            parsed = tyro.cli(target, args=list(argv), prog=prog, **kwargs)
    except SystemExit as exit_:
        if exit_.code != 2:
            sys.stderr.write(captured.getvalue())
            raise
        message, help_command = condense(captured.getvalue())
        raise UsageError(f"{message} (see `{help_command or prog + ' --help'}`)") from None
    sys.stderr.write(captured.getvalue())  # warnings tyro printed while parsing successfully
    return parsed


def _sections(panel: str) -> tuple[str, list[str]]:
    """A tyro panel's title and its sections (separated by rules), each joined into one line."""
    title, sections, current = "", [], []
    for raw in panel.splitlines():
        line = raw.strip()
        if line.startswith("╭"):
            title = line.strip(_BORDERS)
        elif line.startswith("│") and line.strip(_BORDERS) == "":
            sections.append(current)
            current = []
        elif line.startswith("│"):
            current.append(line.strip("│").strip())
        elif line and not line.startswith("╰"):
            current.append(line)  # plain (unboxed) output
    sections.append(current)
    return title, [" ".join(part for part in section if part) for section in sections if section]


def condense(panel: str) -> tuple[str, str | None]:
    """One line from a tyro error panel (title, first section, any 'Available ...' list) and its help command."""
    title, texts = _sections(panel)
    help_command = next((t.split(" run", 1)[1].strip(" :") for t in texts if t.startswith(_HELP)), None)
    kept = [t for i, t in enumerate(texts) if (i == 0 or t.startswith("Available")) and not t.startswith(_DROPPED)]
    message = "; ".join(kept)
    if title and not message.lower().startswith(title.lower()):
        message = f"{title}: {message}" if message else title
    return message or "bad arguments", help_command
