"""Parsing a command's arguments with tyro, with bad usage reported in one line.

Commands are dataclasses (a group's subcommands a `Union` of them) that tyro only
parses; the caller then runs the parsed object, outside the capture below.
tyro reports a parse error as a boxed, multi-line panel on stderr and exits with 2.
The `emergence` command promises one line per error, so `parse` listens to tyro's
parse-error events (`tyro._errors.on_parse_error`: the failure as data — the flag, the
value, the choices, the constructor's message) and raises `UsageError` built from the
event's fields, never from the panel's text. `--help` is untouched.

`tyro._errors` is tyro's documented but private hook (pyproject pins the minor
version); an event type it adds later still becomes one line, from its class name.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence
from typing import Any

import tyro
from tyro import _errors as tyro_errors

from emergence.errors import UsageError


def parse(target: Any, argv: Sequence[str], prog: str, **kwargs: Any) -> Any:
    """`tyro.cli(target, args=argv, prog=prog, **kwargs)`, raising `UsageError` (one line) on bad usage."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), tyro_errors.on_parse_error(_raise_usage_error):
            parsed = tyro.cli(target, args=list(argv), prog=prog, **kwargs)
    except UsageError as err:
        raise UsageError(f"{err} (see `{prog} --help`)") from None
    except SystemExit as exit_:
        if exit_.code != 2:
            sys.stderr.write(captured.getvalue())
            raise
        raise UsageError(f"bad arguments (see `{prog} --help`)") from None  # a failure tyro fires no event for
    sys.stderr.write(captured.getvalue())  # warnings tyro printed while parsing successfully
    return parsed


def _raise_usage_error(event: tyro_errors.ParseErrorEvent) -> None:
    raise UsageError(describe(event))


def describe(event: tyro_errors.ParseErrorEvent) -> str:
    """One line for a tyro parse-error event, from its fields."""
    flag = _flag(getattr(event, "argument", None))
    if isinstance(event, tyro_errors.InvalidChoice):
        return f"{flag}: {event.value!r} is not one of {', '.join(event.choices)}"
    if isinstance(event, tyro_errors.BadValue):
        if event.offending_value is None:
            return f"{flag} needs a value"
        return f"{flag} does not take {event.offending_value!r}"
    if isinstance(event, tyro_errors.UnrecognizedArgs):
        return f"unrecognized arguments: {' '.join(event.tokens)}"
    if isinstance(event, tyro_errors.InstantiationFailure):
        return f"{flag}: {event.message}" if flag else event.message
    if isinstance(event, tyro_errors.MissingArgs):
        names = [_flag(missing.arg) for missing in event.missing_arguments]
        return f"missing {', '.join(names)}"
    return f"bad arguments ({type(event).__name__})"


def _flag(argument: Any) -> str:
    """The flag as the user typed it (`--train.total-steps`), or '' when the event names no argument."""
    if argument is None:
        return ""
    try:
        return str(argument.display_name())
    except Exception:  # an internal type of tyro's: never let describing an error raise another
        return ""
