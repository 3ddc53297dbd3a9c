"""ConsoleSink: one short line per logged step through the `emergence.metrics.console` logger.

    step 1200: loss 0.01234 · grad_norm 0.4512

It logs rather than prints, so the application decides where lines go (and how many:
a `RateLimitFilter` on that logger thins them). Under a `RichProgressCallback`, which
shows the latest metrics itself, leave it out of the sinks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from emergence.log import get_logger
from emergence.metrics.sink import SinkStart


def format_values(values: Mapping[str, float], digits: int = 4) -> str:
    """`tag value · tag value`, each value to `digits` significant digits."""
    return " · ".join(f"{tag} {value:.{digits}g}" for tag, value in values.items())


class ConsoleSink:
    """Logs each write as one INFO line (`digits` significant digits per value)."""

    def __init__(self, digits: int = 4, logger: logging.Logger | None = None) -> None:
        self.digits = digits
        self.logger = logger

    def start(self, run: SinkStart) -> None:
        if self.logger is None:
            self.logger = get_logger("emergence.metrics.console")

    def write(self, step: int, values: Mapping[str, float]) -> None:
        self.logger.info("step %d: %s", step, format_values(values, self.digits))

    def flush(self) -> None:
        """Nothing buffered here: the logging handlers write each line."""

    def close(self) -> None:
        """Nothing to release."""
