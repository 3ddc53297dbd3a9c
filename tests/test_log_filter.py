"""RateLimitFilter: only some records of each kind reach the log, and the log says how many were held back."""

from __future__ import annotations

import logging

import pytest

from emergence.log import RATE_LIMIT, get_logger
from emergence.log_filter import RateLimitFilter, exact_message
from emergence.testing import FakeClock


class Collect(logging.Handler):
    """Keeps the formatted message of every record it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def limited():
    """`limited(filter)`: a fresh logger carrying `filter`, and the list its lines land in."""
    made: list[logging.Logger] = []

    def make(rate_filter: RateLimitFilter, name: str = "test.rate_limit") -> tuple[logging.Logger, list[str]]:
        logger = logging.getLogger(f"{name}.{len(made)}")
        logger.propagate, logger.level = False, logging.DEBUG
        handler = Collect()
        logger.addHandler(handler)
        logger.addFilter(rate_filter)
        made.append(logger)
        return logger, handler.lines

    yield make
    for logger in made:
        logger.handlers.clear()
        logger.filters.clear()


def test_every_n_passes_the_first_and_every_nth_record_of_a_kind_whatever_its_arguments(limited):
    logger, lines = limited(RateLimitFilter(every_n=100))
    for step in range(250):
        logger.warning("loss is NaN at step %d", step)
    logger.warning("another kind")
    assert lines == [
        "loss is NaN at step 0",
        "loss is NaN at step 100 (+99 similar suppressed)",
        "loss is NaN at step 200 (+99 similar suppressed)",
        "another kind",
    ]


def test_every_seconds_passes_one_record_of_a_kind_per_interval_on_the_clock(limited):
    clock = FakeClock()
    logger, lines = limited(RateLimitFilter(every_seconds=60.0, clock=clock))
    for second in range(150):
        logger.info("queue full (%d)", second)
        clock.advance(1.0)
    assert lines == [
        "queue full (0)",
        "queue full (60) (+59 similar suppressed)",
        "queue full (120) (+59 similar suppressed)",
    ]


def test_sampling_passes_about_the_asked_fraction_and_is_reproducible_with_a_seed(limited):
    logger, lines = limited(RateLimitFilter(sample=0.01, seed=7))
    for i in range(20_000):
        logger.warning("slow step %d", i)
    assert 150 <= len(lines) <= 250, f"1 % of 20,000 is 200; got {len(lines)}"
    again, lines_again = limited(RateLimitFilter(sample=0.01, seed=7))
    for i in range(20_000):
        again.warning("slow step %d", i)
    assert lines_again == lines


def test_the_summary_line_counts_what_was_held_back_since_the_last_record_that_passed(limited):
    rate_filter = RateLimitFilter(every_n=10)
    logger, lines = limited(rate_filter)
    for _ in range(25):
        logger.warning("disk slow")
    assert rate_filter.suppressed() == 4
    rate_filter.report_suppressed()
    assert lines[-1] == "4 more message(s) like 'disk slow' were suppressed"
    assert rate_filter.suppressed() == 0
    rate_filter.report_suppressed()
    assert len(lines) == 4, "nothing more to report: no second summary"


def test_a_burst_passes_before_the_limit_applies(limited):
    clock = FakeClock()
    logger, lines = limited(RateLimitFilter(every_seconds=60.0, burst=3, clock=clock))
    for _ in range(10):
        logger.warning("same line")
    clock.advance(60.0)
    logger.warning("same line")
    assert lines == ["same line"] * 3 + ["same line (+7 similar suppressed)"]


def test_exact_message_keeps_lines_with_new_arguments_apart(limited):
    logger, lines = limited(RateLimitFilter(every_n=1000, key=exact_message))
    for path in ("a", "b", "a", "c"):
        logger.info("resumed from %s", path)
    assert lines == ["resumed from a", "resumed from b", "resumed from c"]


def test_the_projects_own_loggers_carry_the_shared_limit():
    assert RATE_LIMIT in get_logger("emergence.some.module").filters
    assert RATE_LIMIT in get_logger().filters


def test_a_line_repeated_every_step_by_the_project_is_thinned_to_its_burst(limited):
    logger = get_logger("emergence.test_flood")
    handler = Collect()
    logger.addHandler(handler)
    try:
        for _ in range(500):
            logger.warning("metrics: CSVSink could not write (disk full)")
    finally:
        logger.removeHandler(handler)
    assert len(handler.lines) == 10
    RATE_LIMIT.report_suppressed()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(), "exactly one of every_n, every_seconds, sample; got none"),
        (dict(every_n=5, sample=0.1), "exactly one of"),
        (dict(every_n=0), "every_n must be a positive integer"),
        (dict(every_seconds=-1.0), "every_seconds must be positive"),
        (dict(sample=0.0), r"sample must be a probability in \(0, 1\]"),
        (dict(sample=1.5), r"sample must be a probability in \(0, 1\]"),
        (dict(every_n=3, burst=-1), "burst must be a non-negative integer"),
    ],
)
def test_bad_limits_are_refused_with_one_line(arguments, message):
    with pytest.raises(ValueError, match=message) as error:
        RateLimitFilter(**arguments)
    assert "\n" not in str(error.value)


def test_caplog_sees_each_line_of_the_non_propagating_emergence_logger_once(caplog):
    """The tests that read the project's log lines rely on pytest (>= 9.2) capturing loggers that do not
    propagate, as `emergence` does when nothing configured logging; forcing propagation would capture twice."""
    get_logger("emergence.test_caplog").warning("a line the test kit sees once")
    assert caplog.text.count("a line the test kit sees once") == 1
