"""`emergence report DIR [--window N]`: a sweep's report (report.md, report.csv, sweep_curves.png) from its metrics.csv.

Reads only DIR/metrics.csv (no JAX, no checkpoint) and writes the three files into DIR;
prints the Markdown. Each run is summarised by the mean of its last N logged values of
each metric (`--window`, default 5). See `emergence.lab.sweep.report` for what the numbers are.
"""

from __future__ import annotations

from pathlib import Path

from emergence.cli.usage import UsageError
from emergence.lab.sweep.report import write_report
from emergence.lab.sweep.windows import WINDOW

USAGE = "emergence report DIR [--window N]: DIR the run dir of a sweep, N the logged values per run to average"


def main(argv: list[str]) -> int:
    """`emergence report DIR [--window N]`: write the report files, print the Markdown, return 0."""
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.split("\n\n")[0])
        return 0
    args, window = list(argv), str(WINDOW)
    if "--window" in args:
        at = args.index("--window")
        window = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
    if len(args) != 1:
        raise UsageError(f"emergence report takes one argument: the run dir of a sweep ({USAGE})")
    if not window.isdigit() or int(window) < 1:
        raise UsageError(f"--window must be a positive count of logged values per run, got {window!r}")
    written = write_report(Path(args[0]), window=int(window))
    print(written[0].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(path) for path in written))
    return 0
