"""The review page end to end in headless Chromium: the real `clipmill review` server serving
`render_report(out, review=True)`; clicks land in overrides.jsonl, `clipmill pack` applies
them, the shards and the rewritten report follow."""

from __future__ import annotations

import json
import re
import shutil

import pyarrow.parquet as pq
import webdataset as wds

from pipeline.cli import main
from pipeline.review.server import serve


def shard_captions(out) -> dict[str, bytes]:
    summary = json.loads((out / "summary.json").read_text())
    urls = [str(out / "shards" / s) for s in summary["shards"]]
    return {s["__key__"]: s["txt"] for s in wds.WebDataset(urls, shardshuffle=False)}


def test_clicks_become_overrides_that_pack_applies(curated_copy, tmp_path, open_page, dom):
    out = tmp_path / "out"
    shutil.copytree(curated_copy, out)
    kept = [c["clip_id"] for c in pq.read_table(out / "clips.parquet").to_pylist() if c["kept"]]
    gone, renamed = kept[0], kept[1]
    server, url = serve(out)
    try:
        assert open_page(url) == []
        # Previews come through the server from the same relative paths as from disk.
        dom.wait("return document.querySelector('img.media') !== null")
        dom.js("document.querySelector('#kept-gallery img.media').scrollIntoView()")
        first = "const i = document.querySelector('#kept-gallery img.media');"
        dom.wait(first + "return i.complete && i.naturalWidth > 0")

        def act(clip: str, action: str) -> dict:
            sel = f"button[data-clip-id='{clip}'][data-action={action}]"
            dom.js(f'document.querySelector("{sel}").click()')
            dom.wait(f"return document.getElementById('reply-{clip}').dataset.state")
            return json.loads(dom.js(f"return document.getElementById('reply-{clip}').textContent"))

        assert act(gone, "reject")["ok"] is True
        box = f"textarea[data-clip-id='{renamed}']"
        dom.js(
            f'document.querySelector("{box}").value = arguments[0]',
            "a person wrote <this>",
        )
        assert act(renamed, "caption")["ok"] is True
        dom.js(f"document.querySelector(\"input[data-clip-id='{renamed}']\").value = '100000'")
        answer = act(renamed, "split")  # the server checks the frame against the clip
        assert "error" in answer and re.search(r"frame", answer["error"])
    finally:
        server.shutdown()
        server.server_close()
    lines = [json.loads(line) for line in (out / "overrides.jsonl").read_text().splitlines()]
    assert [(e["clip_id"], e["action"], e["value"]) for e in lines] == [
        (gone, "reject", None),
        (renamed, "caption", "a person wrote <this>"),
    ]
    assert main(["pack", str(out)]) == 0
    captions = shard_captions(out)
    assert gone not in captions and captions[renamed] == b"a person wrote <this>"
    # The rewritten report shows the corrections (and the caption as text, on disk).
    assert open_page((out / "report.html").as_uri()) == []
    note = f"return document.querySelector('#clip-{renamed} .notes').textContent"
    assert "override: caption" in dom.js(note)
    caption = f"return document.querySelector('#clip-{renamed} .caption').textContent"
    assert dom.js(caption) == "a person wrote <this>"
