"""`emergence report DIR`: a sweep's report (report.md, report.csv, sweep_curves.png) from its metrics.csv.

Reads only DIR/metrics.csv (no JAX, no checkpoint) and writes the three files into DIR;
prints the Markdown. See `emergence.lab.sweep.report` for what the numbers are.
"""

from __future__ import annotations

from pathlib import Path

from emergence.cli.usage import UsageError
from emergence.lab.sweep.report import write_report


def main(argv: list[str]) -> int:
    """`emergence report DIR`: write the report files, print the Markdown, return 0."""
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.split("\n\n")[0])
        return 0
    if len(argv) != 1:
        raise UsageError("emergence report takes one argument: the run dir of a sweep (emergence report DIR)")
    written = write_report(Path(argv[0]))
    print(written[0].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(path) for path in written))
    return 0
