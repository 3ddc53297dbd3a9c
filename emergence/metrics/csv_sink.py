"""CSVSink: `metrics.csv`, one row per logged step, `step` first, read back with the csv module.

The header only ever grows: a tag seen for the first time (an eval metric at the first
evaluation) rewrites the file atomically with one more column, earlier rows blank in
it. Two writes at one step (train metrics, then eval metrics) share a row: the last
row is rewritten in place. Values are written with `repr`, so a float read back is
bitwise the float logged.

On start the file is cut back to the rows at or before the starting step (atomically),
so a resumed run appends exactly where its checkpoint was: no duplicate steps, no
gaps. A torn last line (the writer was killed mid-row) is dropped the same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from emergence.checkpoint.atomic import atomic_write_bytes
from emergence.metrics.sink import SinkStart

Row = dict[str, str]


def read_metrics_csv(path: str | Path) -> tuple[list[str], list[Row]]:
    """The header and the complete rows of a metrics CSV (cells as written; a torn last line is left out)."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None) or ["step"]
    if header[0] != "step":
        raise ValueError(
            f"{path} is not a metrics CSV (its first column is {header[0]!r}, not 'step'); "
            f"move it away or give the CSV sink another path"
        )
    rows = [dict(zip(header, cells)) for cells in reader if len(cells) == len(header) and cells[0].isdigit()]
    return header, rows


def _line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode("utf-8")


class CSVSink:
    """Writes `metrics.csv` (path relative to the run dir unless absolute); see the module docstring."""

    def __init__(self, path: str | Path = "metrics.csv") -> None:
        self.relative = Path(path)
        self.path: Path | None = None
        self._columns: list[str] = []
        self._handle: BinaryIO | None = None
        self._last_row: Row | None = None
        self._last_offset = 0
        self._size = 0

    def start(self, run: SinkStart) -> None:
        self.path = run.resolve(self.relative)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        source = self.path if self.path.exists() else run.history(self.relative)
        header, rows = read_metrics_csv(source) if source is not None else (["step"], [])
        self._columns = header[1:]
        self._rewrite([row for row in rows if int(row["step"]) <= run.step])

    def write(self, step: int, values: Mapping[str, float]) -> None:
        cells = {tag: repr(float(value)) for tag, value in values.items()}
        same_step = self._last_row is not None and int(self._last_row["step"]) == step
        row = {**self._last_row, **cells} if same_step else {"step": str(step), **cells}
        new = [tag for tag in cells if tag not in self._columns]
        if new:
            self._columns += new
            self._handle.flush()
            rows = read_metrics_csv(self.path)[1]
            self._rewrite(rows[:-1] + [row] if same_step else rows + [row])
            return
        line = self._line(row)
        if same_step:
            self._handle.flush()
            self._handle.truncate(self._last_offset)
        else:
            self._last_offset = self._size
        self._handle.write(line)
        self._size = self._last_offset + len(line)
        self._last_row = row

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _line(self, row: Row) -> bytes:
        return _line([row.get("step", ""), *(row.get(tag, "") for tag in self._columns)])

    def _rewrite(self, rows: list[Row]) -> None:
        """Replace the file atomically with the header and `rows`; reopen it for appending."""
        self.close()
        lines = [self._line(row) for row in rows]
        data = _line(["step", *self._columns]) + b"".join(lines)
        atomic_write_bytes(self.path, data)
        self._size = len(data)
        self._last_row = rows[-1] if rows else None
        self._last_offset = self._size - (len(lines[-1]) if lines else 0)
        self._handle = open(self.path, "ab")
