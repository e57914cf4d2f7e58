"""report.html in headless Chromium: opened from disk, counts, gallery, filters, timeline,
escaping, 10,000 clips, and the review controls' POSTs (against a stub server)."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.report import render_report, write_report

GROUP_PAGE, PAGE = 12, 48  # as in report.js
COUNT = "return document.getElementById('filter-count').textContent"


def cards(dom, where: str) -> list[str]:
    return dom.js(
        f"return [...document.querySelectorAll('{where} .card')].map(c => c.dataset.clipId)",
    )


def type_filter(dom, text: str) -> None:
    dom.js(
        "const t = document.getElementById('filter-text'); t.value = arguments[0];"
        "t.dispatchEvent(new Event('input'));",
        text,
    )


def set_select(dom, element_id: str, value: str) -> None:
    dom.js(
        "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('change'));",
        element_id,
        value,
    )


@pytest.fixture(scope="module")
def page(curated_copy, open_page, browser, dom):
    """The junk run's report, opened from disk, every preview scrolled into view once
    (they load lazily); returns the console errors seen and the manifest's clips."""
    errors = open_page(write_report(curated_copy).as_uri())
    for img in browser.find_elements("css selector", "img.media"):
        dom.js("arguments[0].scrollIntoView({block: 'center'})", img)
        dom.wait("return arguments[0].getAttribute('src') && arguments[0].complete", img)
    errors += [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    return errors, pq.read_table(curated_copy / "clips.parquet").to_pylist()


def test_opens_from_disk_with_no_console_error_and_previews_load(page, browser, dom):
    errors, clips = page
    assert browser.current_url.startswith("file://")
    assert errors == []
    widths = dom.js(
        "return Object.fromEntries([...document.querySelectorAll('img.media')]"
        ".map(i => [i.closest('.card').dataset.clipId, i.naturalWidth]))",
    )
    # Every clip is on the first page here, and its WebP decoded from a path relative to the page.
    assert widths == {c["clip_id"]: 192 for c in clips}
    if path := os.environ.get("CLIPMILL_SCREENSHOT"):  # the README's picture (docs/report.png)
        screenshot(browser, dom, path)


def screenshot(browser, dom, path: str) -> None:
    """The top of the page down into the kept gallery, its previews loaded."""
    dom.js("window.scrollTo(0, 0)")
    browser.set_window_size(1280, 2600)
    try:
        dom.wait(
            "return [...document.querySelectorAll('img.media')]"
            ".filter(i => i.getBoundingClientRect().top < innerHeight)"
            ".every(i => i.getAttribute('src') && i.complete)",
        )
        browser.save_screenshot(path)
    finally:
        browser.set_window_size(1280, 1600)


def test_counts_and_galleries_match_the_manifest(page, dom):
    _, clips = page
    total = {
        k: dom.js(f"return document.querySelector('[data-total={k}]').textContent")
        for k in ("clips", "kept", "rejected")
    }
    kept = [c["clip_id"] for c in clips if c["kept"]]
    assert total == {
        "clips": str(len(clips)),
        "kept": str(len(kept)),
        "rejected": str(len(clips) - len(kept)),
    }
    assert cards(dom, "#kept-gallery") == kept
    for reason in {r for c in clips for r in c["reject_reasons"]}:
        mine = [c["clip_id"] for c in clips if reason in c["reject_reasons"]]
        assert cards(dom, f".group[data-reason={reason}]") == mine[:GROUP_PAGE]
        count = dom.js(f"return document.querySelector('[data-reason-count={reason}]').textContent")
        assert count == str(len(mine))


def test_filters_by_reason_video_and_caption(page, dom):
    _, clips = page
    reason = next(c["reject_reasons"][0] for c in clips if c["reject_reasons"])
    set_select(dom, "filter-reason", reason)
    assert cards(dom, "#kept-gallery") == []
    groups = dom.js("return [...document.querySelectorAll('.group')].map(g => g.dataset.reason)")
    assert groups == [reason]
    set_select(dom, "filter-reason", "")
    video = clips[0]["video_id"]
    set_select(dom, "filter-video", "0")
    assert {c.split("_")[0] for c in cards(dom, "main")} == {video}
    assert cards(dom, "#kept-gallery") == [
        c["clip_id"] for c in clips if c["kept"] and c["video_id"] == video
    ]
    set_select(dom, "filter-video", "")
    word = next(c["caption"] for c in clips if c["kept"] and c["caption"]).split()[-1].lower()
    hits = [c for c in clips if word in f"{c['caption'] or ''} {c['clip_id']}".lower()]
    type_filter(dom, word.upper())  # case does not matter
    dom.wait(f"{COUNT}.startsWith('{len(hits)} of')")
    kept = [c["clip_id"] for c in hits if c["kept"]]
    assert cards(dom, "#kept-gallery") == kept
    assert 0 < len(kept) < sum(c["kept"] for c in clips)
    type_filter(dom, "")


def test_timeline_strip_colours_kept_rejected_and_trimmed_spans(page, dom, curated_copy):
    _, clips = page
    video = pq.read_table(curated_copy / "videos.parquet").to_pylist()[0]
    mine = [c for c in clips if c["video_id"] == video["video_id"]]
    probe = [(c["start_s"] + c["duration_s"] / 2) / video["duration_s"] for c in mine]
    gap = next(
        (a["end_s"] + b["start_s"]) / 2 / video["duration_s"]
        for a, b in zip(mine, mine[1:], strict=False)
        if b["start_s"] - a["end_s"] > 0.1
    )
    colours = dom.js(
        """
        const c = document.querySelector('canvas.strip[data-video="0"]'), g = c.getContext('2d');
        const at = f => [...g.getImageData(Math.floor(f * c.width), 8, 1, 1).data.slice(0, 3)];
        return arguments[0].map(at);
    """,
        [*probe, gap],
    )
    kept, rejected, trimmed = [46, 157, 91], [209, 73, 91], [201, 204, 209]
    assert colours[:-1] == [kept if c["kept"] else rejected for c in mine]
    assert colours[-1] == trimmed


def test_ten_thousand_clips_render_without_ten_thousand_elements(
    manifest, evil, tmp_path, open_page, dom
):
    out = manifest(tmp_path / "big", 10, 1000, {0: evil, 17: "the NEEDLE clip", 4242: "needle 2"})
    assert open_page(write_report(out).as_uri()) == []
    assert dom.js(COUNT) == "10000 of 10000 clips match"
    assert dom.js("return document.querySelector('[data-total=kept]').textContent") == "7500"
    nodes = dom.js("return document.getElementsByTagName('*').length")
    assert nodes < 2500, nodes  # pages of 48 kept and 12 per reason, one canvas per video
    first = cards(dom, "#kept-gallery")
    assert len(first) == PAGE and first[0] == "0000000000000000_0000000_0000024"
    # The hostile caption (clip 0, first on the page) is shown as text and ran nothing.
    shown = dom.js("return document.querySelector('#kept-gallery .caption').textContent")
    assert shown == evil and dom.js("return window.__pwned === undefined")
    dom.js("document.querySelector('#kept-pager [data-role=next]').click()")
    second = cards(dom, "#kept-gallery")
    assert len(second) == PAGE and not set(second) & set(first)
    type_filter(dom, "needle")
    dom.wait(f"{COUNT} === '2 of 10000 clips match'")


class _Stub(BaseHTTPRequestHandler):
    """The review server's contract, stubbed: GET serves the page and OUT's files, POST
    api/override records the body and answers like the real one."""

    out: Path
    posted: list

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/":
            body, kind = render_report(self.out, review=True).encode(), "text/html"
        else:
            body, kind = (self.out / self.path.lstrip("/")).read_bytes(), "image/webp"
        self._send(200, body, kind)

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.posted.append((self.path, body))
        bad = body["action"] == "split" and body["value"] > 1000
        answer = {"error": "frame out of range"} if bad else {"ok": True, "action": body["action"]}
        self._send(400 if bad else 200, json.dumps(answer).encode(), "application/json")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_review_controls_post_the_override_contract(curated_copy, open_page, dom):
    posted: list = []
    handler = type("Handler", (_Stub,), {"out": curated_copy, "posted": posted})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert open_page(f"http://127.0.0.1:{server.server_port}/") == []
        clip = cards(dom, "#kept-gallery")[0]
        sel = f"[data-clip-id='{clip}']"
        reply = f"return document.getElementById('reply-{clip}')"

        def act(action: str, state: str) -> str:
            dom.js(f'document.querySelector("button{sel}[data-action={action}]").click()')
            dom.wait(f"{reply}.dataset.state === '{state}'")
            return dom.js(f"{reply}.textContent")

        assert json.loads(act("reject", "ok")) == {"ok": True, "action": "reject"}
        dom.js(
            f'document.querySelector("textarea{sel}").value = arguments[0]',
            "a <b>red</b> disc",
        )
        act("caption", "ok")
        dom.js(f"document.querySelector(\"input{sel}[data-field=split-frame]\").value = '12'")
        act("split", "ok")
        dom.js(
            f"document.querySelector(\"input{sel}[data-field=split-frame]\").value = '5000'",
        )
        assert json.loads(act("split", "error")) == {"error": "frame out of range"}
        act("join", "ok")
        act("keep", "ok")
    finally:
        server.shutdown()
    assert [p for p, _ in posted] == ["/api/override"] * 6
    assert [b for _, b in posted] == [
        {"clip_id": clip, "action": "reject", "value": None},
        {"clip_id": clip, "action": "caption", "value": "a <b>red</b> disc"},
        {"clip_id": clip, "action": "split", "value": 12},
        {"clip_id": clip, "action": "split", "value": 5000},
        {"clip_id": clip, "action": "join", "value": None},
        {"clip_id": clip, "action": "keep", "value": None},
    ]
