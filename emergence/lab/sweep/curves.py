"""sweep_curves.png: one panel per reported metric, one line per config (mean over seeds) in a band (min to max)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from emergence.checkpoint.atomic import atomic_write
from emergence.lab.sweep.sinks import read_long_csv
from emergence.lab.sweep.windows import config_label


def config_series(
    header: list[str], rows: list[dict[str, str]], metric: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """config label -> (steps, values[seeds, steps]) of `metric`, over the steps every seed of the config logged."""
    keys = header[1 : header.index("seed")]
    by_config: dict[str, dict[int, dict[int, float]]] = {}
    for row in rows:
        if row.get(metric, "") == "":
            continue
        by_config.setdefault(config_label(keys, row), {}).setdefault(int(row["seed"]), {})[int(row["step"])] = float(
            row[metric]
        )
    out = {}
    for label, seeds in by_config.items():
        steps = sorted(set.intersection(*(set(series) for series in seeds.values())))
        out[label] = (np.asarray(steps), np.asarray([[series[s] for s in steps] for series in seeds.values()]))
    return out


def write_sweep_curves(metrics_csv: Path, png_path: Path, metrics: Sequence[str]) -> None:
    """Draw the panels of `metrics` from a sweep's long-form metrics.csv into `png_path`, atomically."""
    header, rows = read_long_csv(metrics_csv)
    metrics = list(metrics) or [header[-1]]
    figure = Figure(figsize=(6 * min(len(metrics), 3), 3.6 * -(-len(metrics) // 3)), layout="constrained")
    for i, metric in enumerate(metrics):
        ax = figure.add_subplot(-(-len(metrics) // 3), min(len(metrics), 3), i + 1)
        for label, (steps, values) in config_series(header, rows, metric).items():
            (line,) = ax.plot(steps, values.mean(0), label=label)
            ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
        ax.set_title(metric)
        ax.set_xlabel("update")
    figure.axes[0].legend(fontsize="small")
    atomic_write(png_path, lambda handle: figure.savefig(handle, format="png"))
