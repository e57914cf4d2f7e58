"""Seeing the dataset: OUT/report.html, one self-contained page built from the manifests.

    data.py      the manifests -> what the page shows (totals, per-video seconds, clip rows,
                 score histograms with the run's thresholds, what-if curves)
    previews.py  looping WebP previews, made once under OUT/work/previews/
    page.py      `render_report(out, review=...)` -> HTML; `write_report(out)` -> report.html
    cli.py       `clipmill report OUT`
    assets/      the page's HTML template, CSS and script (review.js: the review controls),
                 inlined into every report

The review server (`clipmill review`) serves `render_report(out, review=True)`: the same
page with per-clip controls that POST to `api/override`.
"""

from pipeline.report.page import render_report, write_report

__all__ = ["render_report", "write_report"]
