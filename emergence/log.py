"""The library's logger: quiet by default under a configured root, visible otherwise."""

from __future__ import annotations

import logging

from emergence.log_filter import RateLimitFilter, exact_message

LOGGER_NAME = "emergence"

# One limit for all the project's loggers: an identical line (logger, level, text) passes
# 10 times, then once a minute, saying how many were held back.
RATE_LIMIT = RateLimitFilter(every_seconds=60.0, burst=10, key=exact_message)


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """The `emergence` logger (or a child), printing INFO to stderr when nothing else is set up.

    Like Lightning: if the application configured the root logger, records propagate
    there and no handler is added; otherwise the user still sees what the Trainer says
    (for example, that it starts fresh because there is no checkpoint). Every logger it
    returns carries `RATE_LIMIT`, so a message repeated each step cannot flood the log.
    """
    root = logging.getLogger(LOGGER_NAME)
    if not root.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[emergence] %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    logger = logging.getLogger(name)
    if RATE_LIMIT not in logger.filters:
        logger.addFilter(RATE_LIMIT)
    return logger
