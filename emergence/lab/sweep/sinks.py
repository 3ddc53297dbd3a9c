"""Where a sweep's metrics go: metrics.csv in long form, one TensorBoard dir per run, and the mean over runs.

The sweep's train step returns each metric per run (`loss/total/run_3`) and averaged
(`loss/total`). `LongCSVSink` writes the per-run values as rows `run, <grid values>,
seed, step, <metrics>` (one row per run per logged step: the shape pandas, seaborn and
`emergence report` want); `RunTensorBoardSinks` gives every run its own log dir named by
its values (`tensorboard/diversity_bonus=0.05,seed=2`) so TensorBoard overlays them;
`MeanCSVSink` keeps the averages as an ordinary wide CSV for the framework's plots.

Continuity across resumes as for `CSVSink`: on start the long file is cut back
(atomically) to the rows at or before the starting step, a torn last line is dropped,
and a resume from another run dir starts from that run's file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from pathlib import Path

from emergence.checkpoint.atomic import atomic_write_bytes
from emergence.lab.sweep.grid import Run, short_name
from emergence.metrics import CSVSink, SinkStart, TensorBoardSink

_PER_RUN = re.compile(r"^(.*)/run_(\d+)$")
Row = dict[str, str]


def by_run(values: Mapping[str, float]) -> dict[int, dict[str, float]]:
    """`{"loss/run_3": x, "loss": m}` as `{3: {"loss": x}}`: per-run values under their plain names (means dropped)."""
    out: dict[int, dict[str, float]] = {}
    for tag, value in values.items():
        match = _PER_RUN.match(tag)
        if match:
            out.setdefault(int(match.group(2)), {})[match.group(1)] = float(value)
    return out


def leading_columns(runs: list[Run]) -> list[str]:
    """`run`, the grid's short key names, `seed`, `step`: the columns before the metrics."""
    keys = [short_name(key) for key in runs[0].values] if runs else []
    return ["run", *keys, "seed", "step"]


def read_long_csv(path: str | Path) -> tuple[list[str], list[Row]]:
    """The header and complete rows of a long-form metrics CSV (a torn last line is left out)."""
    text = Path(path).read_text(encoding="utf-8")
    text = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None) or []
    if header[:1] != ["run"]:
        raise ValueError(
            f"{path} is not a sweep's long-form metrics CSV (its first column is not 'run'); "
            f"move it away or use another --train.run-dir"
        )
    return header, [dict(zip(header, cells)) for cells in reader if len(cells) == len(header)]


def _line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode("utf-8")


class LongCSVSink:
    """Writes `metrics.csv` (relative to the run dir unless absolute) in long form; see the module docstring."""

    def __init__(self, runs: list[Run], path: str | Path = "metrics.csv") -> None:
        self.runs = runs
        self.relative = Path(path)
        self.path: Path | None = None
        self._lead = leading_columns(runs)
        self._metrics: list[str] = []
        self._rows: list[Row] = []
        self._handle = None

    def start(self, run: SinkStart) -> None:
        self.path = run.resolve(self.relative)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        source = self.path if self.path.exists() else run.history(self.relative)
        header, rows = read_long_csv(source) if source is not None else (self._lead, [])
        self._metrics = [tag for tag in header if tag not in self._lead]
        self._rewrite([row for row in rows if int(row["step"]) <= run.step])

    def write(self, step: int, values: Mapping[str, float]) -> None:
        per_run = by_run(values)
        if not per_run:
            return
        new = sorted({tag for cells in per_run.values() for tag in cells} - set(self._metrics))
        self._metrics += new
        same_step = bool(self._rows) and int(self._rows[-1]["step"]) == step
        rows = [self._row(step, index, cells) for index, cells in sorted(per_run.items())]
        if same_step:
            merged = {row["run"]: row for row in self._rows if int(row["step"]) == step}
            for row in rows:
                merged[row["run"]] = {**merged.get(row["run"], {}), **row}
            self._rewrite([row for row in self._rows if int(row["step"]) != step] + list(merged.values()))
        elif new:
            self._rewrite(self._rows + rows)
        else:
            self._rows += rows
            self._handle.write(b"".join(self._encode(row) for row in rows))

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _row(self, step: int, index: int, cells: Mapping[str, float]) -> Row:
        run = self.runs[index]
        described = [str(index), *(repr(float(v)) for v in run.values.values()), str(run.seed), str(step)]
        return dict(zip(self._lead, described)) | {tag: repr(value) for tag, value in cells.items()}

    def _encode(self, row: Row) -> bytes:
        return _line([row.get(column, "") for column in self._lead + self._metrics])

    def _rewrite(self, rows: list[Row]) -> None:
        """Replace the file atomically with the header and `rows`; reopen it for appending."""
        self.close()
        atomic_write_bytes(self.path, _line(self._lead + self._metrics) + b"".join(self._encode(r) for r in rows))
        self._rows = rows
        self._handle = open(self.path, "ab")


class RunTensorBoardSinks:
    """One `TensorBoardSink` per run, under `tensorboard/<run name>`, each given its run's values by plain name."""

    def __init__(self, runs: list[Run], logdir: str | Path = "tensorboard") -> None:
        self.sinks = [TensorBoardSink(Path(logdir) / run.name) for run in runs]

    def start(self, run: SinkStart) -> None:
        for sink in self.sinks:
            sink.start(run)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        for index, cells in by_run(values).items():
            self.sinks[index].write(step, cells)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class MeanCSVSink(CSVSink):
    """An ordinary wide CSV (`metrics_mean.csv`) of the averages over runs: the per-run tags are left out."""

    def __init__(self, path: str | Path = "metrics_mean.csv") -> None:
        super().__init__(path)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        means = {tag: value for tag, value in values.items() if not _PER_RUN.match(tag)}
        if means:
            super().write(step, means)
