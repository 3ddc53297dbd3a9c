"""The `emergence` command: one module per command group, each loaded only when used.

    emergence train  [--preset quick|kaggle] [--platform ...] [--train.* --env.* --ppo.* --evolution.*]
    emergence ckpt   list|inspect|verify|diff|export ...
    emergence eval   CKPT
    emergence render CKPT --out world.gif|png
    emergence kaggle init|push|run|status|download ...

A group is a function `main(argv: list[str]) -> int` named in `COMMANDS`; registering
one is one line there (`"NAME": ("package.module:function", "one-line summary")`).

Exit codes: 0 done (or stopped at its time budget); 1 a check failed (`ckpt verify`,
`ckpt diff`); 2 bad usage or bad input, said in one line on stderr (every
`EmergenceError` and `ValueError` a command raises ends here, without a traceback);
143 / 130 after an emergency checkpoint on SIGTERM / SIGINT (the signal callback
exits with them).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from emergence.errors import EmergenceError

COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "emergence.lab.cli.train:main",
        "train the foraging lab (PPO with evolution), resumable and preemption-safe",
    ),
    "eval": (
        "emergence.lab.cli.episodes:eval_main",
        "greedy episodes of a checkpoint's policy, against a random policy",
    ),
    "render": ("emergence.lab.cli.episodes:render_main", "draw the world through an episode (GIF or PNG)"),
    "sweep": ("emergence.lab.cli.sweep:main", "a grid of config values x seeds trained as one resumable program"),
    "report": ("emergence.lab.cli.report:main", "a sweep's report: last-N-rows mean and IQM, Welch + Holm vs baseline"),
    "ckpt": ("emergence.cli.ckpt:main", "list, inspect, verify, diff and export checkpoints"),
    "kaggle": ("emergence.cli.kaggle:main", "init, push, run, check on and download a Kaggle training notebook"),
}

USAGE_ERROR = 2


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "usage: emergence COMMAND [ARGS]   (emergence COMMAND --help for its flags)\n\ncommands:\n" + "\n".join(
        lines
    )


def _command(name: str):
    module, function = COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module), function)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `emergence ARGV`; returns the exit code (the console script passes it to `sys.exit`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else USAGE_ERROR
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"emergence: unknown command {name!r}; use one of {', '.join(COMMANDS)}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return _command(name)(rest)
    except (EmergenceError, ValueError) as err:
        print(f"emergence {name}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
