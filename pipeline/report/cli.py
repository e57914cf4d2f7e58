"""`clipmill report OUT`: (re)write OUT/report.html from the manifests, in seconds.

No stage runs and no model loads: the page is read off clips.parquet, videos.parquet and
summary.json; only missing previews are made (one short ffmpeg call each).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

USAGE = "usage: clipmill report OUT   (OUT: a folder written by `clipmill curate`)"


def report_main(argv: list[str]) -> int:
    prog = "clipmill report"
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print(f"{prog}: error: expected one argument, OUT\n{USAGE}", file=sys.stderr)
        return 2
    from pipeline.report.data import NotCuratedError, check_curated
    from pipeline.report.page import write_report

    out = Path(argv[0])
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        check_curated(out)
        path = write_report(out)
    except NotCuratedError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
