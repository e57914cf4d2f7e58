"""OUT/report.html: one self-contained page, built from the manifests.

Everything the page needs is inside it: the CSS and the script inline, the data as a
JSON block that the script parses (no CDN, no server, so it opens from disk). Only the
previews stay outside, as paths relative to OUT, which resolve the same from disk and
behind `clipmill review`. The script builds every element with textContent, never
innerHTML with data, so a caption or file name is always shown as text.
"""

from __future__ import annotations

import json
import logging
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.report.data import check_curated, report_data
from pipeline.report.previews import Clip, make_previews, media_of

log = logging.getLogger(__name__)

REPORT = "report.html"


def _asset(name: str) -> str:
    return resources.files("pipeline.report").joinpath("assets", name).read_text("utf-8")


def embed_json(data: Any) -> str:
    """JSON safe inside a <script> element: no "</script>", "<!--" or "&" can close or
    comment it out, whatever a caption holds (JSON.parse reads the escapes back)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    # U+2028/2029 are valid in JSON but ended a JavaScript string before ES2019.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _clips(out: Path) -> list[Clip]:
    table = pq.read_table(out / "clips.parquet", columns=list(Clip._fields))
    return [Clip(**row) for row in table.to_pylist()]


def render_report(out: Path, *, review: bool = False, previews: bool = True) -> str:
    """The report page of the curated output `out`, as HTML.

    `review=True` adds the per-clip controls (keep, reject, caption, split, join) that POST
    to the relative URL `api/override`; the review server serves this page and OUT's files.
    `previews` makes the missing WebP previews first (existing ones are kept).
    """
    out = Path(out)
    check_curated(out)
    clips = _clips(out)
    if previews:
        make_previews(out, clips)
    data = report_data(out, media_of(out, clips), review=review)
    parts = {
        "CSS": _asset("report.css"),
        "DATA": embed_json(data),
        # The controls' script only where they are: a page from disk has nothing to POST to.
        "JS": (_asset("review.js") + "\n" if review else "") + _asset("report.js"),
    }
    # One pass, so a caption that spells "{{JS}}" stays text.
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], _asset("report.html"))


def write_report(out: Path) -> Path:
    """Write OUT/report.html (atomically: a temporary name, then a rename); returns its path."""
    out = Path(out)
    html = render_report(out)
    path = out / REPORT
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_report_quietly(out: Path) -> Path | None:
    """`write_report` for the end of `clipmill curate` and `clipmill pack`: the dataset is
    already written, so a failing report costs one log line, never the run."""
    try:
        return write_report(out)
    except Exception as exc:  # noqa: BLE001 - any failure here must not fail curation
        log.warning("report.html not written: %s: %s", type(exc).__name__, exc)
        return None
