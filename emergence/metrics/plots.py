"""training_curves.png: the run's metrics at a glance, drawn from `metrics.csv` with matplotlib's Agg backend.

One panel per tag *family* (the part of a tag before its first `/`: `loss`, `val_loss`,
`reward/mean` and `reward/max` share the `reward` panel), x = step, a dotted vertical
line at every step the run resumed from. A panel whose values are all positive and
span more than two decades (a loss) gets a log y axis. Figures are built with
`matplotlib.figure.Figure` directly, never through pyplot: no window, no global
backend switch, safe from a callback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from emergence.checkpoint.atomic import atomic_write
from emergence.metrics.csv_sink import Row, read_metrics_csv

Series = dict[str, tuple[list[int], list[float]]]

COLUMNS = 3
PANEL_INCHES = (5.0, 3.4)
LOG_SCALE_SPAN = 100.0


def tag_families(tags: Iterable[str]) -> dict[str, list[str]]:
    """Tags grouped by the part before their first `/`, in order of first appearance."""
    families: dict[str, list[str]] = {}
    for tag in tags:
        families.setdefault(tag.split("/", 1)[0], []).append(tag)
    return families


def series_from_rows(header: Sequence[str], rows: Sequence[Row]) -> Series:
    """Each column's finite values with their steps (blank cells, NaN and inf left out)."""
    series: Series = {}
    for tag in header[1:]:
        points = [(int(row["step"]), float(row[tag])) for row in rows if row.get(tag)]
        points = [(step, value) for step, value in points if math.isfinite(value)]
        if points:
            series[tag] = ([step for step, _ in points], [value for _, value in points])
    return series


def training_curves_figure(series: Series, resumed_at: Sequence[int] = (), title: str = "") -> Figure:
    """One axes per tag family (a single note when there is nothing yet); see the module docstring."""
    families = tag_families(series)
    count = max(len(families), 1)
    columns = min(COLUMNS, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for extra in axes[count:]:
        extra.remove()
    if not families:
        axes[0].text(0.5, 0.5, "no metrics logged yet", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax, (family, tags) in zip(axes, families.items()):
        _draw_panel(ax, family, {tag: series[tag] for tag in tags}, resumed_at)
    if resumed_at:
        title += f"{' · ' if title else ''}dotted: resumed at step {', '.join(map(str, resumed_at))}"
    figure.suptitle(title, fontsize=11)
    return figure


def _draw_panel(ax, family: str, series: Series, resumed_at: Sequence[int]) -> None:
    for tag, (steps, values) in series.items():
        ax.plot(steps, values, label=tag, linewidth=1.5, marker="o" if len(steps) <= 25 else None, markersize=3)
    for step in resumed_at:
        ax.axvline(step, color="0.45", linestyle=":", linewidth=1.2)
    values = [v for _, vs in series.values() for v in vs]
    if min(values) > 0 and max(values) / min(values) > LOG_SCALE_SPAN:
        ax.set_yscale("log")
    ax.set_title(family, fontsize=11, loc="left", fontweight="bold")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False)


def write_training_curves(
    csv_path: str | Path, png_path: str | Path, resumed_at: Sequence[int] = (), title: str = ""
) -> int:
    """Draw `csv_path` (a metrics CSV) into `png_path`, atomically; the number of panels."""
    header, rows = read_metrics_csv(csv_path)
    series = series_from_rows(header, rows)
    figure = training_curves_figure(series, resumed_at, title)
    atomic_write(png_path, lambda handle: figure.savefig(handle, format="png"))
    return len(tag_families(series))
