"""`clipmill review`: the server refuses what it must and records what it may."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.review.overrides import read_overrides
from pipeline.review.server import MAX_BODY

VIDEO = "0123456789abcdef"
FIRST, SECOND, THIRD = (f"{VIDEO}_{a:07d}_{b:07d}" for a, b in ((0, 50), (53, 100), (100, 150)))


def test_page_previews_and_named_clip_files_are_served(tiny_out, review_server, fetch):
    url = review_server(tiny_out)
    assert url.startswith("http://127.0.0.1:")
    status, body = fetch(url, "GET", "/")
    assert status == 200 and b"data-review='true'" in body
    assert fetch(url, "GET", "/work/previews/a.webp") == (200, b"RIFFwebp")
    assert fetch(url, "GET", f"/work/videos/{VIDEO}/{FIRST}.mp4") == (200, b"mp4 bytes")
    status, body = fetch(url, "GET", "/api/overrides")
    assert status == 200 and json.loads(body) == {"overrides": []}


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/work/previews/../../../secret.txt",
        "/%2e%2e/secret.txt",
        "/work/previews/%2e%2e/%2e%2e/summary.json",
        "/work/previews/..%2f..%2fsummary.json",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/C:/Windows/win.ini",
        "/summary.json",  # inside OUT, but neither a preview nor a clip file
        "/clips.parquet",
        f"/work/videos/{VIDEO}/record.json",
        f"/work/videos/{VIDEO}/{VIDEO}_0000000_0000049.mp4",  # not a manifest clip
        "/work/previews/missing.webp",
        "/work/previews/a.webp%00.txt",
    ],
)
def test_path_tricks_are_404(tiny_out, review_server, fetch, path):
    url = review_server(tiny_out)
    status, body = fetch(url, "GET", path)
    assert status == 404, path
    assert b"secret" not in body and b"root:" not in body


def test_a_symlink_out_of_out_is_404(tiny_out, review_server, fetch):
    (tiny_out / "work" / "previews" / "link.webp").symlink_to(tiny_out.parent / "secret.txt")
    staged = tiny_out / "work" / "videos" / VIDEO / f"{FIRST}.jpg"
    staged.symlink_to(tiny_out.parent / "secret.txt")
    url = review_server(tiny_out)
    assert fetch(url, "GET", "/work/previews/link.webp")[0] == 404
    assert fetch(url, "GET", f"/work/videos/{VIDEO}/{FIRST}.jpg")[0] == 404


def test_bad_actions_are_400_and_write_nothing(tiny_out, review_server, post):
    url = review_server(tiny_out)
    bad = [
        {"clip_id": "ffffffffffffffff_0000000_0000050", "action": "reject", "value": None},
        {"clip_id": "../../etc", "action": "reject", "value": None},
        {"clip_id": 7, "action": "reject", "value": None},
        {"clip_id": FIRST, "action": "delete", "value": None},
        {"clip_id": FIRST, "action": "split", "value": 0},  # on the boundary, not inside
        {"clip_id": FIRST, "action": "split", "value": 50},
        {"clip_id": FIRST, "action": "split", "value": 500},
        {"clip_id": FIRST, "action": "split", "value": -3},
        {"clip_id": FIRST, "action": "split", "value": "25"},
        {"clip_id": FIRST, "action": "split", "value": True},
        {"clip_id": FIRST, "action": "caption", "value": "   "},
        {"clip_id": FIRST, "action": "caption", "value": "x" * 2001},
        {"clip_id": FIRST, "action": "caption", "value": None},
        {"clip_id": FIRST, "action": "reject", "value": "why"},
        {"clip_id": THIRD, "action": "keep", "value": None},  # a hard reject: no mp4
        {"clip_id": THIRD, "action": "join", "value": None},  # the last clip of its video
        {"clip_id": SECOND, "action": "join", "value": None},  # windows of one shot
        {"clip_id": FIRST, "action": "join", "value": THIRD},  # not the next clip
        {"clip_id": FIRST, "action": "reject", "value": None, "extra": 1},
    ]
    for body in bad:
        status, reply = post(url, body)
        assert status == 400 and "error" in reply, body
    assert read_overrides(tiny_out) == []
    assert not (tiny_out / "overrides.jsonl").exists()


def test_good_actions_are_appended(tiny_out, review_server, post):
    url = review_server(tiny_out)
    assert post(url, {"clip_id": FIRST, "action": "reject", "value": None})[0] == 200
    assert post(url, {"clip_id": SECOND, "action": "keep", "value": None})[0] == 200
    status, reply = post(url, {"clip_id": FIRST, "action": "caption", "value": " a red disc "})
    assert status == 200 and reply["ok"] is True
    status, reply = post(url, {"clip_id": FIRST, "action": "split", "value": 25})
    assert status == 200 and "curate" in reply["note"]
    status, reply = post(url, {"clip_id": FIRST, "action": "join", "value": None})
    assert status == 200 and reply["entry"]["value"] == SECOND  # filled in by the server
    got = [(e["clip_id"], e["action"], e["value"]) for e in read_overrides(tiny_out)]
    assert got == [
        (FIRST, "reject", None),
        (SECOND, "keep", None),
        (FIRST, "caption", "a red disc"),
        (FIRST, "split", 25),
        (FIRST, "join", SECOND),
    ]
    assert all(e["time"] for e in read_overrides(tiny_out))


def test_foreign_hosts_origins_types_and_sizes_are_refused(tiny_out, review_server, post, fetch):
    url = review_server(tiny_out)
    ok = {"clip_id": FIRST, "action": "reject", "value": None}
    assert post(url, ok, Host="evil.example:80")[0] == 403  # DNS rebinding
    assert post(url, ok, Origin="http://evil.example")[0] == 403  # CSRF
    assert post(url, ok, Origin="null")[0] == 403
    assert fetch(url, "GET", "/", headers={"Host": "evil.example"})[0] == 403
    form = b"clip_id=x"
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    assert fetch(url, "POST", "/api/override", form, ctype)[0] == 415
    assert fetch(url, "POST", "/api/override", b"{not json")[0] == 400
    big = json.dumps({**ok, "value": "x" * (MAX_BODY + 1)}).encode()
    assert fetch(url, "POST", "/api/override", big)[0] == 413
    assert fetch(url, "POST", "/elsewhere", json.dumps(ok).encode())[0] == 404
    assert not (tiny_out / "overrides.jsonl").exists()
    local = {"Host": "localhost", "Origin": url.rstrip("/")}
    assert post(url, ok, **local)[0] == 200


def test_the_command_refuses_other_hosts_and_missing_outputs(tiny_out, tmp_path, capsys):
    assert main(["review", str(tiny_out), "--host", "0.0.0.0"]) == 2
    assert "--host" in capsys.readouterr().err
    assert main(["review", str(tmp_path / "nothing")]) == 1
    assert "clips.parquet" in capsys.readouterr().err
