"""Metrics on their way off the device: accumulation, schedules, and the sinks they are written to.

`LogThrottleCallback` (in `emergence.callbacks`) ties these together; they are usable alone.
"""

from emergence.metrics.console_sink import ConsoleSink
from emergence.metrics.csv_sink import CSVSink, read_metrics_csv
from emergence.metrics.schedule import Every
from emergence.metrics.sink import Sink, SinkStart
from emergence.metrics.tensorboard_sink import TensorBoardSink
from emergence.metrics.totals import MetricTotals, Stats
from emergence.metrics.wandb_sink import WandbSink

__all__ = [
    "CSVSink",
    "ConsoleSink",
    "Every",
    "MetricTotals",
    "Sink",
    "SinkStart",
    "Stats",
    "TensorBoardSink",
    "WandbSink",
    "read_metrics_csv",
]
