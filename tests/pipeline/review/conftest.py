"""Fixtures of the review tests: a tiny hand-made output, a copy of the junk run, HTTP."""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import CLIP_SCHEMA, empty_clip

VIDEO = "0123456789abcdef"


def _clip(start: int, end: int, scene: int, **values) -> dict:
    return empty_clip(
        clip_id=f"{VIDEO}_{start:07d}_{end:07d}",
        video_id=VIDEO,
        source_path="a.mp4",
        scene_index=scene,
        window_index=0,
        start_frame=start,
        end_frame=end,
        start_s=start / 25,
        end_s=end / 25,
        duration_s=(end - start) / 25,
        **values,
    )


@pytest.fixture
def tiny_out(tmp_path) -> Path:
    """An output with three clips of one video (the last two: windows of one shot), the
    first one's staged mp4, a preview, and a secret file beside OUT."""
    out = tmp_path / "out"
    rows = [
        _clip(0, 50, 0, kept=True),
        _clip(53, 100, 1, kept=False, reject_reasons=["low_motion"]),
        _clip(100, 150, 1, kept=False, reject_reasons=["too_short"]),
    ]
    out.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, CLIP_SCHEMA), out / "clips.parquet")
    staged = out / "work" / "videos" / VIDEO
    staged.mkdir(parents=True)
    (staged / f"{rows[0]['clip_id']}.mp4").write_bytes(b"mp4 bytes")
    (staged / f"{rows[1]['clip_id']}.mp4").write_bytes(b"mp4 bytes 2")
    (staged / "record.json").write_text("{}")
    (out / "work" / "previews").mkdir()
    (out / "work" / "previews" / "a.webp").write_bytes(b"RIFFwebp")
    (out / "summary.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("secret")
    return out


@pytest.fixture
def curated(junk_curated, tmp_path) -> Path:
    """A private copy of the junk run (the session's original stays untouched)."""
    out = tmp_path / "curated"
    shutil.copytree(junk_curated[0], out)
    return out


def stand_in_page(out: Path, *, review: bool = False) -> str:
    """Test-level stand-in with render_report's signature (the real page is pipeline.report)."""
    return f"<html><body data-review='{str(review).lower()}'>{Path(out).name}</body></html>"


def request(
    url: str,
    method: str,
    path: str,
    body: dict | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """(status, body) of one request sent as given (http.client: no path normalising)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"Content-Type": "application/json"} if data is not None else {}
    sent.update(headers or {})
    conn.request(method, path, body=data, headers=sent)
    resp = conn.getresponse()
    status, payload = resp.status, resp.read()
    conn.close()
    return status, payload


@pytest.fixture
def fetch():
    """`fetch(url, method, path, body=None, headers=None)` -> (status, body bytes)."""
    return request


@pytest.fixture
def post():
    """`post(url, {"clip_id", "action", "value"}, **headers)` -> (status, reply JSON)."""

    def send(url: str, body: dict, **headers: str) -> tuple[int, dict]:
        status, payload = request(url, "POST", "/api/override", body, headers)
        return status, json.loads(payload)

    return send


@pytest.fixture
def review_server():
    """`review_server(out)` -> url of a server with the stand-in page; shut down after."""
    from pipeline.review.server import serve

    servers = []

    def start(out: Path, render=stand_in_page) -> str:
        server, url = serve(out, port=0, render=render)
        servers.append(server)
        return url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
