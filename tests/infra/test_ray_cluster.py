"""`clipmill curate` on a real 2-node Ray cluster, submitted with `ray job submit`.

Both nodes run on this machine: a head (`ray start --head`, dashboard + job server) and a
second node with a custom resource `node2`, each with its own ports and `--temp-dir`. The
transcode stage is forced onto the second node by that resource, its worker is SIGKILLed
while it transcodes, and the output must equal an in-process run's: Ray restarts the actor
and re-runs the video, which is then neither lost nor doubled.

Teardown stops only this cluster's processes (found by their temp dirs): `ray stop` would
stop every Ray on the machine, the session's `ray_local` and other users' included.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray_cluster]

BIN = Path(sys.executable).parent
STAGE = "TranscodeStage"  # the stage forced onto node2
# The same curation in both runs; OCR and CLIP are off to keep the test short (their
# placement is unit-tested in tests/pipeline/config/test_resources.py).
SHARED = {"filters": {"text": {"enabled": False}}, "clip": {"enabled": False}}
PLACED = {"custom": {"node2": 1}, "concurrency": [1, 1]}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _short_dir(tmp_path: Path) -> Path:
    """Ray's unix sockets live under --temp-dir and must fit in 107 bytes."""
    if len(str(tmp_path)) <= 40:
        return tmp_path
    return Path(tempfile.mkdtemp(prefix="cmray-"))


def _cluster_procs(temp_dirs: list[Path]):
    """Every process of this cluster: its daemons (a --flag names our temp dir) and children."""
    import psutil

    tags = [str(d) for d in temp_dirs]
    roots = []
    for p in psutil.process_iter(["cmdline"]):
        args = p.info["cmdline"] or []
        if any(a.startswith("--") and any(t in a for t in tags) for a in args):
            roots.append(p)
    found = {}
    for r in roots:
        try:
            for p in [r, *r.children(recursive=True)]:
                found[p.pid] = p
        except psutil.Error:
            continue
    return list(found.values())


def _stop(temp_dirs: list[Path]) -> None:
    import psutil

    procs = _cluster_procs(temp_dirs)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=3)  # a throwaway cluster: no long grace
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


def _raylet(temp_dir: Path):
    import psutil

    for p in psutil.process_iter(["name", "cmdline"]):
        args = p.info["cmdline"] or []
        if p.info["name"] == "raylet" and any(str(temp_dir) in a for a in args):
            return p
    raise AssertionError(f"no raylet under {temp_dir}")


def _stage_workers(raylet, stage: str) -> list:
    """Worker processes of a raylet whose process title names the stage's actor."""
    import psutil

    out = []
    for p in raylet.children(recursive=True):
        try:
            if stage in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


def _slow_ffmpeg(root: Path) -> Path:
    """A folder with an `ffmpeg` that waits, then runs the very binary the local run uses.

    Transcoding a tiny test video takes tens of milliseconds: too short a window to be sure
    of killing a worker mid-video. The wait widens it; the bytes written stay the same.
    """
    from pipeline.ffmpeg import ffmpeg_exe

    folder = root / "bin"
    folder.mkdir()
    wrapper = folder / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\nsleep 0.5\nexec {shlex.quote(ffmpeg_exe())} "$@"\n')
    wrapper.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("ray")
    root = _short_dir(base)
    head_dir, node2_dir = root / "h", root / "n"
    gcs, dash, client, agent1, agent2 = _free_ports(5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # A token of this cluster's own: Ray 2.5x enables token auth when ~/.ray/auth_token exists.
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_USAGE_STATS_ENABLED="0",
        HF_HUB_OFFLINE="1",
        PATH=f"{_slow_ffmpeg(root)}:{BIN}:{env.get('PATH', '')}",
    )
    common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    head = [BIN / "ray", "start", "--head", "--port", gcs, "--num-cpus", 2, *common]
    head += ["--temp-dir", head_dir, "--include-dashboard", "true"]
    head += ["--dashboard-host", "127.0.0.1", "--dashboard-port", dash]
    head += ["--ray-client-server-port", client, "--dashboard-agent-listen-port", agent1]
    node2 = [BIN / "ray", "start", "--address", f"127.0.0.1:{gcs}", "--num-cpus", 1]
    node2 += ["--resources", json.dumps({"node2": 1}), "--temp-dir", node2_dir, *common]
    node2 += ["--dashboard-agent-listen-port", agent2]
    try:
        for cmd in (head, node2):
            subprocess.run([str(a) for a in cmd], env=env, check=True, capture_output=True)
        yield {"env": env, "dashboard": f"http://127.0.0.1:{dash}", "dirs": [head_dir, node2_dir]}
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"ray start failed: {exc.stderr.decode()[-2000:]}")
    finally:
        _stop([head_dir, node2_dir])
        if root != base:  # the short fallback lies outside pytest's tmp folder
            shutil.rmtree(root, ignore_errors=True)


def _kill_stage_worker(node2_dir: Path, head_dir: Path, job: subprocess.Popen) -> int:
    """SIGKILL the stage's actor on node2 while its ffmpeg runs; return the killed pid."""
    import psutil

    head, node2 = _raylet(head_dir), _raylet(node2_dir)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        assert not _stage_workers(head, STAGE), f"{STAGE} ran on the head"
        for worker in _stage_workers(node2, STAGE):
            try:
                busy = any("ffmpeg" in " ".join(c.cmdline()[:2]) for c in worker.children())
                if busy:  # mid-video
                    worker.send_signal(signal.SIGKILL)
                    return worker.pid
            except psutil.Error:
                continue
        time.sleep(0.05)
    log = job.stdout.read()[-3000:] if job.poll() is not None else ""
    raise AssertionError(f"no {STAGE} worker transcoding on node2 before the job ended\n{log}")


def test_curate_job_on_two_nodes_survives_a_killed_worker(cluster, tmp_path, digest_tree):
    from pipeline.config.curate import build_config
    from pipeline.driver import curate
    from pipeline.synthetic.synth import synthesize

    raw = tmp_path / "raw"
    synthesize(raw, 3, seed=3, width=160, height=96, duration_s=6.0)
    placed = {**SHARED, "transcode": {"resources": PLACED}}
    (tmp_path / "cluster.yaml").write_text(json.dumps(placed))  # JSON is YAML
    entry = [str(BIN / "clipmill"), "curate", str(raw), "--output", str(tmp_path / "cluster")]
    entry += ["--config", str(tmp_path / "cluster.yaml"), "--ray.address", "auto"]
    submit = [str(BIN / "ray"), "job", "submit", "--address", cluster["dashboard"]]
    submit += ["--", *entry]  # ray quotes each argument for the shell it runs
    job = subprocess.Popen(
        submit, env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    head_dir, node2_dir = cluster["dirs"]
    try:
        killed = _kill_stage_worker(node2_dir, head_dir, job)
        log, _ = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0 and "succeeded" in log, log[-3000:]
    assert killed

    local = tmp_path / "local"
    curate([str(raw)], local, build_config({**SHARED, "ray": {"address": "none"}}))
    skip = {"summary.json"}
    ours, theirs = digest_tree(tmp_path / "cluster", skip), digest_tree(local, skip)
    assert any(k.startswith("shards/") for k in ours)
    assert ours == theirs  # shard bytes, manifests, everything but summary.json
    rows = pq.read_table(tmp_path / "cluster" / "clips.parquet").to_pylist()
    ids = [r["clip_id"] for r in rows]
    assert ids == [r["clip_id"] for r in pq.read_table(local / "clips.parquet").to_pylist()]
    assert len(ids) == len(set(ids))
    # Every video came through the stream exactly once, the killed one included.
    done = re.findall(r"\[(\d+)/(\d+)\] (\w+) ok", log)
    assert len(done) == int(done[0][1]) == len({d[2] for d in done}) == 3, log[-3000:]
