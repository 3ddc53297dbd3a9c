"""The library's logger: quiet by default under a configured root, visible otherwise."""
from __future__ import annotations

import logging

LOGGER_NAME = "emergence"


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """The `emergence` logger (or a child), printing INFO to stderr when nothing else is set up.

    Like Lightning: if the application configured the root logger, records propagate
    there and no handler is added; otherwise the user still sees what the Trainer says
    (for example, that it starts fresh because there is no checkpoint).
    """
    root = logging.getLogger(LOGGER_NAME)
    if not root.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[emergence] %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logging.getLogger(name)
