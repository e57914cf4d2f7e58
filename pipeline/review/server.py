"""`clipmill review OUT [--port N]`: the report with editing on, served on 127.0.0.1 only.

    GET  /                 the report page (`pipeline.report.render_report(out, review=True)`)
    GET  /api/overrides    the corrections that count now (JSON)
    GET  /<path>           a file under OUT/work/previews/, or a clip's staged mp4/jpg that
                           clips.parquet names; anything else is 404
    POST /api/override     {"clip_id", "action", "value"} -> one line of OUT/overrides.jsonl

A page on any web site can make a browser send requests to 127.0.0.1, so the server
trusts nothing it is sent: the Host header must name this machine (a DNS-rebinding
page has its own name there), a POST must carry JSON (a cross-site form cannot, and
no CORS preflight is ever answered) and an Origin, when given, must be local; every
clip id and frame is checked against the manifest; a path is served only when it
resolves, symlinks followed, inside the allowed folders of OUT. Nothing is written
but overrides.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.report.previews import previews_dir
from pipeline.review.overrides import (
    Manifest,
    OverrideError,
    append_override,
    latest,
    read_overrides,
    validate,
)
from schemas.layout import video_dir, work_dir

LOCAL_HOSTS = ("127.0.0.1", "localhost")
MAX_BODY = 16 * 1024  # bytes: an action is a few hundred; a caption at most a few KB
MEDIA = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".webp": "image/webp", ".png": "image/png"}
Render = Callable[..., str]


class ReviewState:
    """What the handlers share: OUT, its manifest (reloaded when a pack rewrote it)."""

    def __init__(self, out: Path, render: Render | None) -> None:
        self.out = Path(out).resolve()
        self.render = render
        self._lock = threading.Lock()
        self._manifest: tuple[int, Manifest] | None = None

    def manifest(self) -> Manifest:
        mtime = (self.out / "clips.parquet").stat().st_mtime_ns
        with self._lock:
            if self._manifest is None or self._manifest[0] != mtime:
                self._manifest = (mtime, Manifest.load(self.out))
            return self._manifest[1]

    def page(self) -> str:
        render = self.render
        if render is None:
            from pipeline.report import render_report as render
        return render(self.out, review=True)

    def media_path(self, url_path: str) -> Path | None:
        """The file a GET may read, or None (404): inside OUT, previews or a named clip."""
        raw = unquote(url_path)
        parts = raw.split("/")[1:]
        if "\x00" in raw or "\\" in raw or raw.startswith("//") or not parts:
            return None
        if any(p in ("", ".", "..") for p in parts) or ":" in parts[0]:
            return None
        path = (self.out / Path(*parts)).resolve()
        previews = previews_dir(self.out).resolve()
        if path.is_relative_to(previews) and path.is_file():
            return path
        # A clip's own files, only for clip ids the manifest names.
        if len(parts) == 4 and parts[:2] == ["work", "videos"]:
            stem, _, ext = parts[3].partition(".")
            clip = self.manifest().clips.get(stem)
            if clip and clip["video_id"] == parts[2] and f".{ext}" in (".mp4", ".jpg"):
                want = (video_dir(work_dir(self.out), clip["video_id"]) / parts[3]).resolve()
                if path == want and path.is_relative_to(self.out) and path.is_file():
                    return path
        return None


def _local(value: str | None) -> bool:
    """Whether a Host value or an Origin's host names this machine."""
    if not value:
        return False
    host = urlsplit(value if "//" in value else f"//{value}").hostname
    return host in LOCAL_HOSTS


class Handler(BaseHTTPRequestHandler):
    server_version = "clipmill-review"
    state: ReviewState  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # quiet: the terminal shows the URL, not every preview request

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: dict[str, Any]) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - the base's name
        if not _local(self.headers.get("Host")):
            return self._json(403, {"error": "Host must be 127.0.0.1 or localhost"})
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._send(200, self.state.page().encode(), "text/html; charset=utf-8")
        if path == "/api/overrides":
            return self._json(200, {"overrides": latest(read_overrides(self.state.out))})
        found = self.state.media_path(path)
        if found is None:
            return self._json(404, {"error": "not found"})
        kind = MEDIA.get(found.suffix.lower(), "application/octet-stream")
        self._send(200, found.read_bytes(), kind)

    def do_POST(self) -> None:  # noqa: N802 - the base's name
        refused = self._refuse_post()
        if refused:
            return self._json(*refused)
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        except ValueError:
            return self._json(400, {"error": "body is not JSON"})
        if not isinstance(body, dict) or set(body) - {"clip_id", "action", "value"}:
            return self._json(400, {"error": "expected {clip_id, action, value}"})
        state = self.state
        try:
            clip_id, action = body.get("clip_id"), body.get("action")
            value = validate(state.out, state.manifest(), clip_id, action, body.get("value"))
        except OverrideError as exc:
            return self._json(400, {"error": str(exc)})
        entry = append_override(state.out, body["clip_id"], body["action"], value)
        reply: dict[str, Any] = {"ok": True, "action": body["action"], "entry": entry}
        if body["action"] in ("split", "join"):
            reply["note"] = "re-cut by the next `clipmill curate` of this output (same inputs)"
        self._json(200, reply)

    def _refuse_post(self) -> tuple[int, dict[str, str]] | None:
        """(status, error) when a POST must not be read, before its body is."""
        if urlsplit(self.path).path != "/api/override":
            return 404, {"error": "not found"}
        if not _local(self.headers.get("Host")):
            return 403, {"error": "Host must be 127.0.0.1 or localhost"}
        origin = self.headers.get("Origin")
        if origin is not None and not _local(origin):
            return 403, {"error": "cross-origin request refused"}
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            return 415, {"error": "Content-Type must be application/json"}
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return 411, {"error": "Content-Length required"}
        if int(length) > MAX_BODY:
            return 413, {"error": f"body over {MAX_BODY} bytes"}
        return None


def make_server(out: Path, port: int = 0, render: Render | None = None) -> ThreadingHTTPServer:
    """The server bound to 127.0.0.1:port (0: a free port), not yet serving."""
    state = ReviewState(out, render)
    state.manifest()  # a folder with no clips.parquet fails here, not at the first request
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


def serve(
    out: Path, port: int = 0, render: Render | None = None
) -> tuple[ThreadingHTTPServer, str]:
    """Start serving in a daemon thread; (server, url). Stop with `server.shutdown()`."""
    server = make_server(out, port, render)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _error(message: str, code: int) -> int:
    print(f"clipmill review: {message}", file=sys.stderr)
    return code


def review_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="clipmill review",
        description="Serve OUT's report on 127.0.0.1 with controls that append to "
        "OUT/overrides.jsonl (applied by `clipmill pack OUT`).",
    )
    parser.add_argument("output", help="a folder written by `clipmill curate`")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 or localhost only")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.host not in LOCAL_HOSTS:
        return _error(f"error: --host must be 127.0.0.1 (got {args.host!r})", 2)
    if not 0 <= args.port <= 65535:
        return _error(f"error: --port must be in [0, 65535], got {args.port}", 2)
    out = Path(args.output)
    if not (out / "clips.parquet").is_file():
        return _error(f"{out} has no clips.parquet: run `clipmill curate` first", 1)
    server = make_server(out, args.port)
    print(f"review: http://127.0.0.1:{server.server_address[1]}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
