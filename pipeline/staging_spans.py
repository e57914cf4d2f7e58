"""A long video's split analysis in spans on several workers (`--split.chunk_s`): the stages.

- `SpansStage` (1:N, before the split) turns a long video's row into one row per span
  (`pipeline/stages/spans.py`) and starts the video's `.partial` folder afresh, as the split
  does for a whole video.
- `SplitStage` (pipeline.staging) analyses a span row with `split_span`: the span's features
  and low-res samples go to `spans/{index}/` in the staging folder; the span that finds every
  other one done claims the join (an exclusive file, so exactly one joins) and returns the
  video's row, as a whole-video split would; the others return a `PENDING` row, which
  `UnitsStage` drops.
- A span that failed or saw damage makes the joiner analyse the whole video in one piece.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.curate import SplitConfig
from pipeline.stages.damage import Timeline, read_timeline
from pipeline.stages.lowres import LowresRecorder, join_lowres
from pipeline.stages.proxy import PROXY, write_index
from pipeline.stages.spans import Span, plan_spans
from pipeline.stages.split import Splitter, analysis_size
from schemas.layout import partial_dir

SPANS = "spans"  # a spanned video's finished spans wait here for the last one
PENDING = "pending"  # a span row's key when another span joins the video


class SpansStage:
    """Ray Data stage (1:N spans): a video at least twice `--split.chunk_s` long as one row
    per span, each its own block, so the split's workers share it. Other videos, and those
    without timestamps or with a broken index, pass as one row, unchanged."""

    fans_out = True

    def __init__(self, cfg: SplitConfig, work: str) -> None:
        self.cfg, self.work = cfg, Path(work)

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        video = json.loads(row["video"])
        spans = self._spans(video)
        if len(spans) == 1:
            return [row]
        folder = partial_dir(self.work, video["video_id"])
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        count = len(spans)
        return [
            {"video": json.dumps(dict(video, span={"index": k, "count": count, **vars(s)}))}
            for k, s in enumerate(spans)
        ]

    def _spans(self, video: dict[str, Any]) -> list[Span]:
        chunk_s, duration = self.cfg.chunk_s, video.get("duration_s")
        if video["status"] != "ok" or chunk_s is None:
            return [Span()]
        if duration is not None and duration < 1.5 * chunk_s:
            return [Span()]  # the container's word is enough to leave most videos whole
        fps = float(video.get("fps") or 25.0)
        try:
            timeline = read_timeline(video["local_path"], fps)
        except Exception:  # noqa: BLE001 - the split reports a broken file on its row
            return [Span()]
        if timeline is None or timeline.demux_error:
            return [Span()]
        return plan_spans(timeline.n, fps, chunk_s)


def split_span(
    splitter: Splitter,
    video: dict[str, Any],
    span: dict[str, Any],
    folder: Path,
    whole: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any] | None:
    """Analyse one span of `video` into `folder`; the analysed video when this span is the
    last to finish (`whole(video)` analyses it in one piece if any span failed or saw
    damage), else None."""
    if not folder.is_dir():
        return None  # a span re-run after its video was joined and finished
    spans = folder / SPANS
    own = spans / f"{span['index']:05d}"
    shutil.rmtree(own, ignore_errors=True)
    own.mkdir(parents=True)
    t0 = time.perf_counter()
    part, timeline = _analyse(splitter, video, Span(span["start"], span["end"]), own)
    part["provenance"] = {
        "worker": f"{os.uname().nodename}:{os.getpid()}",
        "seconds": round(time.perf_counter() - t0, 3),
    }
    save_part(own, part)
    mark_done(spans, span["index"])
    if not claim_last(spans, span["index"], span["count"], "*.done"):
        return None
    folders = [spans / f"{k:05d}" for k in range(span["count"])]
    parts = [load_part(f) for f in folders]
    if any(p.get("failed") or p.get("damaged") for p in parts):
        shutil.rmtree(spans)
        return whole(video)
    join_lowres(folders, folder)
    _keep_proxies(folders, parts, folder, timeline)
    # Every part is sound, so this span read the timestamps: the join reuses them.
    path = video["local_path"]
    joined = splitter.plan(video, lambda fps, size: splitter.join(path, fps, timeline, parts))
    joined["analysis_spans"] = [dict(p["provenance"], **p["span"]) for p in parts]
    shutil.rmtree(spans)
    return joined


def _analyse(
    splitter: Splitter, video: dict[str, Any], span: Span, own: Path
) -> tuple[dict[str, Any], Timeline | None]:
    """One span's features (`failed` with the reason when it could not be analysed) and the
    video's timeline."""
    cfg = splitter.cfg
    fps = float(video.get("fps") or 25.0)
    size = analysis_size(video["width"], video["height"], cfg.analysis_width)
    recorder, timeline = None, None
    try:
        timeline = read_timeline(video["local_path"], fps)
        if timeline is None:
            raise ValueError("no timestamps")
        after = timeline.times()[span.start - 1] if span.start > 0 else None
        recorder = LowresRecorder(own, cfg.sample_fps, after_s=after)
        path, proxy = video["local_path"], own / PROXY
        part, _ = splitter.analyse_span(path, fps, size, timeline, span, recorder, proxy)
        recorder.finish()
    except Exception as exc:  # noqa: BLE001 - the joiner falls back to the whole video
        part = {"failed": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        if recorder is not None:
            recorder.close()
    part["span"] = {"start": span.start, "end": span.end}
    return part, timeline


ARRAYS = ("blank", "single", "many")


def _keep_proxies(
    folders: list[Path], parts: list[dict[str, Any]], dest: Path, timeline: Timeline | None
) -> None:
    """Each span's preview proxy into the video's folder, indexed by where its span starts."""
    if timeline is None:
        return
    times, kept = timeline.times(), []
    for k, (own, part) in enumerate(zip(folders, parts, strict=True)):
        name = f"proxy-{k:05d}.mkv"
        if (own / PROXY).is_file():
            os.replace(own / PROXY, dest / name)
            kept.append((times[part["span"]["start"]], name))
    write_index(dest, timeline.start_s, kept)


def save_part(folder: Path, part: dict[str, Any]) -> None:
    """A span's features into its folder: arrays as .npy (never pickled), the rest as JSON."""
    for key in ARRAYS:
        if key in part:
            np.save(folder / f"{key}.npy", np.asarray(part[key]))
    rest = {k: v for k, v in part.items() if k not in ARRAYS}
    (folder / "part.json").write_text(json.dumps(rest))


def load_part(folder: Path) -> dict[str, Any]:
    part = json.loads((folder / "part.json").read_text())
    for key in ARRAYS:
        if (folder / f"{key}.npy").exists():
            part[key] = np.load(folder / f"{key}.npy", allow_pickle=False)
    return part


def claim_last(folder: Path, index: int, count: int, pattern: str) -> bool:
    """Whether part `index` of `count`, just marked done in `folder` (a file matching
    `pattern`), is the one to gather them all: the last to see every part done claims it
    with an exclusive file, so exactly one gathers; a part re-run after its claim gathers
    again."""
    if len(list(folder.glob(pattern))) < count:
        return False
    claim = folder / "gatherer"
    try:
        with open(claim, "x") as f:
            f.write(str(index))
    except FileExistsError:
        return claim.read_text() == str(index)
    return True


def mark_done(folder: Path, index: int) -> None:
    tmp = folder / f"{index:05d}.tmp"
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, folder / f"{index:05d}.done")
